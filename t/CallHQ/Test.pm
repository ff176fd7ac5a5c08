package CallHQ::Test;

# Helpers for the suites in t/: SQL on the test database, stopping and
# starting it.  Works under both our runner and OpenResty's Test::Nginx.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(psql pg_stop pg_start);

sub psql {
    my ($sql) = @_;
    my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO}
        or die "TEST_NGINX_PG_CONNINFO is not set: run the suite with make test\n";
    open my $fh, '-|', 'psql', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
        $conninfo, '-c', $sql
        or die "psql: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "psql failed on: $sql\n";
    $out =~ s/\n\z//;
    return $out;
}

sub pg_stop {
    system('scripts/pg.sh', 'stop', $ENV{CALLHQ_TEST_PGDIR}) == 0
        or die "could not stop PostgreSQL\n";
}

sub pg_start {
    system('scripts/pg.sh', 'start', $ENV{CALLHQ_TEST_PGDIR},
           $ENV{CALLHQ_TEST_PGPORT}) == 0
        or die "could not start PostgreSQL\n";
}

1;
