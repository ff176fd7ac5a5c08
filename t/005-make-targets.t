# The operators' make targets that README offers:
#
#   make migrate PG="conninfo"            a fresh database gets the schema,
#                                         and a second run changes nothing
#   make api-key PG="conninfo" ORG=name   prints a key (alone on stdout)
#                                         that nginx then accepts for that
#                                         organisation; a second run gives
#                                         the same organisation a second key
#
# The targets run before the blocks, from the top of the tree, against the
# suite's PostgreSQL: migrate on a database of its own (callhq_make, made
# afresh), api-key on the database nginx serves; the blocks then use the
# printed keys.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

callhq_defaults();

our $ORG = 'make-api-key org';

sub make_target {
    my @args = @_;
    open my $fh, '-|', 'make', '-s', '--no-print-directory', @args
        or die "make: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "make @args failed (exit $?)\n";
    return $out;
}

# make migrate, twice, on a database of its own
my $base = $ENV{TEST_NGINX_PG_CONNINFO} or die "run this with make test\n";
(my $admin = $base) =~ s/dbname=\S+/dbname=postgres/;
(my $fresh = $base) =~ s/dbname=\S+/dbname=callhq_make/;
{
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    for my $sql ('drop database if exists callhq_make', 'create database callhq_make') {
        system('psql', '-X', '-q', $admin, '-c', $sql) == 0
            or die "could not run $sql\n";
    }
}

our $MIGRATE1 = make_target('migrate', "PG=$fresh");
our $MIGRATE2 = make_target('migrate', "PG=$fresh");
our @APPLIED = map { /^applied (\d\d\d_\w+)$/ ? $1 : () } split /\n/, $MIGRATE1;
our @FILES = map { m{sql/(\d\d\d_\w+)\.sql$} ? $1 : () } sort glob 'sql/[0-9][0-9][0-9]_*.sql';
our $RECORDED;
{
    local $ENV{TEST_NGINX_PG_CONNINFO} = $fresh;
    $RECORDED = CallHQ::Test::psql('select string_agg(version, \' \' order by version)'
                                   . ' from callhq.schema_migrations');
}

# make api-key, twice, for one new organisation
CallHQ::Test::psql(qq{delete from callhq.orgs where name = '$ORG'});
our $KEY1 = make_target('api-key', "PG=$base", "ORG=$ORG");
our $KEY2 = make_target('api-key', "PG=$base", "ORG=$ORG");
chomp($KEY1, $KEY2);
our $ORG_ID = CallHQ::Test::psql(qq{select id from callhq.orgs where name = '$ORG'});
our $KEYS = CallHQ::Test::psql(qq{select count(*) from callhq.api_keys k
                                    join callhq.orgs o on o.id = k.org_id
                                   where o.name = '$ORG'});

Test::More::is(join(' ', @APPLIED), join(' ', @FILES),
               'make migrate: each migration applied once, in order');
Test::More::like($MIGRATE1, qr/^applied functions \(\d+ files\)$/m,
                 'make migrate: then the functions');
Test::More::is($RECORDED, join(' ', @FILES),
               'make migrate: schema_migrations lists them all');
Test::More::unlike($MIGRATE2, qr/^applied \d/m,
                   'make migrate again: no migration applied twice');
Test::More::like($KEY1, qr/\Achq_[0-9a-f]{40}\z/,
                 'make api-key: the key alone on stdout');
Test::More::like($KEY2, qr/\Achq_[0-9a-f]{40}\z/, 'make api-key again: a key');
Test::More::isnt($KEY1, $KEY2, 'two runs, two keys');
Test::More::like($ORG_ID, qr/\A[0-9a-f-]{36}\z/, 'one organisation of that name');
Test::More::is($KEYS, 2, 'with both keys');

our $ASST = ::obj(id => $::UUID, orgId => $ORG_ID, name => 'made-by-make',
                  createdAt => $::TS, updatedAt => $::TS);

run_tests();

__DATA__

=== TEST 1: nginx accepts the first key: its org creates an assistant
--- more_headers eval
"Authorization: Bearer $::KEY1\nContent-Type: application/json"
--- request
POST /assistant
{"name": "made-by-make"}
--- error_code: 201
--- response_body eval
::body($::ASST)



=== TEST 2: the second key is the same organisation: it lists that assistant, and only it
--- more_headers eval
"Authorization: Bearer $::KEY2"
--- request
GET /assistant
--- response_body eval
::body(::arr($::ASST))



=== TEST 3: Org A's key does not see it
--- request
GET /assistant?limit=100
--- response_body_unlike
made-by-make
