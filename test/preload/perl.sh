#!/bin/sh
# perl: hashes of arrays, string building, regexes, sort.
. "$(dirname "$0")/need.sh"
need perl
PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 perl -e '
use strict; use warnings;
my %h;
for my $i (0 .. 199999) {
	push @{ $h{"k" . ($i % 50021)} }, "v$i" x (1 + $i % 5);
}
my $n = 0; $n += scalar @{ $h{$_} } for keys %h;
print "keys ", scalar(keys %h), " values $n\n";
my @sorted = sort { length($h{$b}[0]) <=> length($h{$a}[0]) or $a cmp $b } keys %h;
print "first @sorted[0 .. 4]\n";
my $text = join " ", map { sprintf "w%d", ($_ * 7919) % 4001 } 0 .. 299999;
my %count; $count{$1}++ while $text =~ /\b(w\d+7)\b/g;
my @top = (sort { $count{$b} <=> $count{$a} or $a cmp $b } keys %count)[0 .. 4];
print "top @top\n";
(my $copy = $text) =~ s/w(\d)(\d*)/W$2$1/g;
print "len ", length($copy), " ", substr($copy, 0, 40), "\n";
my @big = map { [ $_, "x" x ($_ % 300) ] } 0 .. 99999;
my $sum = 0; $sum += length $_->[1] for @big;
print "big $sum\n";
'
