#!/usr/bin/env perl
# Prints N free TCP ports on 127.0.0.1 (default 1).
use strict;
use warnings;
use IO::Socket::INET;

my $n = shift // 1;
my @socks;
for (1 .. $n) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "freeport: $!\n";
    push @socks, $s;
}
print join(' ', map { $_->sockport } @socks), "\n";
