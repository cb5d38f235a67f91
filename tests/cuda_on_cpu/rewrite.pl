#!/usr/bin/perl
# Rewrites one cuda/*.cu into C++ for the CPU emulator (cuda_runtime.h in this folder says
# what it models): perl rewrite.pl cuda/gemm.cu > gemm.cpp. Line numbers stay those of the
# .cu (a #line directive, no line added or removed), so errors and messages point at it.
#
#   k<T><<<grid, block, smem>>>(args)  ->  kvs_emu::launch(k<T>, "k<T>", __FILE__, __LINE__, grid, block, smem)(args)
#   extern __shared__ float smem[];    ->  float* const smem = static_cast<float*>(kvs_emu::dynamic_shared_memory());
#   __shared__ float a[N], b[M];       ->  the same, then kvs_emu::block_shared(a, sizeof a); ... (0xFF per block)
#   __launch_bounds__(N) k(...) {      ->  k(...) { kvs_emu::launch_bounds(N);
use strict;
use warnings;

my $path = $ARGV[0] or die "usage: rewrite.pl FILE.cu\n";
open(my $in, '<', $path) or die "rewrite.pl: cannot read $path: $!\n";
my $src = do { local $/; <$in> };
close($in);

# Launches: a kernel name with optional template arguments (no nested <>), then <<<...>>>.
# The arguments in parentheses follow and may span lines; they are left as they are.
$src =~ s{\b(\w+(?:<[^<>;]*>)?)<<<(.*?)>>>}{kvs_emu::launch($1, "$1", __FILE__, __LINE__, $2)}g;

# Dynamic shared memory.
$src =~ s{extern\s+__shared__\s+([\w:]+)\s+(\w+)\s*\[\s*\]\s*;}
         {$1* const $2 = static_cast<$1*>(kvs_emu::dynamic_shared_memory());}g;

# Static shared arrays and variables: every declared name is registered after the
# declaration. Names: drop __align__(n) and [...] extents, split at commas, last word.
$src =~ s{^([ \t]*)__shared__\s+([^;]*);}{
    my ($indent, $decl) = ($1, $2);
    (my $names = $decl) =~ s/__align__\s*\(\s*\d+\s*\)//g;
    $names =~ s/\[[^\]]*\]//g;
    my @names = map { /(\w+)\s*$/ ? $1 : die "rewrite.pl: cannot read the name in '__shared__ $decl'\n" } split(/,/, $names);
    "${indent}__shared__ $decl;" . join('', map { " kvs_emu::block_shared(&$_, sizeof $_);" } @names)
}gme;

# Launch bounds become a check at the top of the kernel's body (the body's { may sit
# lines below the name, after the parameters).
$src =~ s{__launch_bounds__\s*\(([^()]*)\)(\s*\w+\s*\([^{};]*\)\s*\{)}{$2 kvs_emu::launch_bounds($1);}g;

die "rewrite.pl: $path: a launch (<<< or >>>) was not rewritten\n" if $src =~ /<<<|>>>/;
die "rewrite.pl: $path: an extern __shared__ declaration was not rewritten\n" if $src =~ /extern\s+__shared__/;
die "rewrite.pl: $path: a __launch_bounds__ was not rewritten\n" if $src =~ /__launch_bounds__/;

print "#line 1 \"$path\"\n", $src;
