// Which GEMM kernel gemm(0, ...) runs for a shape: a pure function of (n, k, d, SM count),
// plain C++ (no CUDA) so the tests check it on any machine. The kernels are in cuda/gemm.cu;
// walkthrough chapter 4.2 explains the choice. out (n, d) = x (n, k) @ w (d, k)^T: n is the
// batch (decode) or the prompt length (prefill), d and k are the weight's shape.
//
// n <= 4 rows: version 5, matrix-vector (a warp streams one w row and dots it with every x row
// from L1, which carries (1 + n) x the bytes of w: fine up to 4 rows). Above, the warp-tiled
// kernel (versions 6 and 7) with the tile configuration and the split of K (S blocks per output
// tile, each over a slice of k) that the cost model below says is fastest: every tile of
// kGemmTiles, S = 1..16 where each slice keeps >= 128 values of k (a few pipeline stages, so
// filling the pipeline stays cheap) and the S partial outputs fit the scratch. So the tile is
// chosen by its padding rows (16-row tiles waste at most 15, 128-row tiles up to 127) against
// how well it uses an SM, and splits spread a small grid over every SM.
//
// The cost model (gemm_model_us), from the H100 SXM datasheet: 132 SMs at 1.98 GHz, each 128
// fp32 multiply-adds per clock, 3.35 TB/s of DRAM. One launch takes
//   max(memory, compute) + sum
//   memory   w, x and out once, and split K's partials written and read back, at DRAM speed;
//   compute  the multiply-adds of the busiest SM, padding rows and columns included (blocks go
//            to SMs in turn: ceil(blocks / SMs) each), at 128 per clock times
//              - the tile's share of issue slots that are multiply-adds: a thread's step of 4 k
//                is 4 TM TN FFMA, TM + TN shared loads and about 4 other instructions (8x8:
//                93%, 4x4: 84%, 2x2: 67%), and
//              - min(1, resident warps / 8): with fewer than 2 warps per scheduler nothing
//                covers a warp's waits (the busiest SM's blocks, up to what its registers,
//                512 threads of 128 registers, and shared memory hold at once);
//   sum      split K's last block per tile reading the S partial tiles (16-byte loads, all S
//            in flight: per thread 16 S bytes per ~800-clock L2 round trip, at most 64 bytes
//            per clock per SM), after the multiply-adds.
// What it leaves out: L2 traffic and caches, instruction latencies, launch overhead. No GPU
// has run these kernels yet: `kvshare bench kernels` prints each pick next to the
// alternatives, which is what a GPU session should check the model against.
#pragma once
#include <algorithm>
#include <cstddef>

// A tile configuration of the warp-tiled kernel (versions 6 and 7). A block computes a
// bm x bn tile of out with (bm / tm) x (bn / tn) threads, each a tm x tn register tile; its
// warps are 4 x 8 threads; k advances bk at a time through `stages` shared-memory buffers
// filled by cp.async.
struct GemmTile {
    const char* name;
    int bm, bn;      // block tile: rows of x (n) x rows of w (d)
    int tm, tn;      // thread tile
    int bk, stages;  // k per stage, pipeline depth
    int threads;
};

enum GemmTileId {
    GEMM_TILE_128x128,
    GEMM_TILE_16x64,
    GEMM_TILE_32x64,
    GEMM_TILE_64x64,
    GEMM_TILE_128x64,
    GEMM_TILE_16x32,
    GEMM_TILES
};

// The skinny tiles (16..64 rows) take deeper stages of 32 k: they are bound by streaming w, and
// a block keeps 3 stages = 30..49 KB of tiles in flight. The 8x8-per-thread tiles are bound by
// arithmetic and take 16 k per stage (less shared memory, two blocks per SM). 16 x 32 is the
// narrow one, for a weight of few rows (wk and wv of TinyLlama: 256): 8 column tiles where
// 16 x 64 has 4, so half the splits fill the GPU, and 2 x 2 outputs per thread give a block 4
// warps.
constexpr GemmTile kGemmTiles[GEMM_TILES] = {
    {"128x128", 128, 128, 8, 8, 16, 3, 256}, {"16x64", 16, 64, 4, 4, 32, 4, 64},  {"32x64", 32, 64, 4, 4, 32, 4, 128},
    {"64x64", 64, 64, 4, 4, 32, 4, 256},     {"128x64", 128, 64, 8, 8, 16, 3, 128}, {"16x32", 16, 32, 2, 2, 32, 4, 128},
};

constexpr int kGemmMatvecMaxRows = 4;
constexpr int kGemmMaxSplits = 16;
constexpr int kGemmMinSplitK = 128;
// Split K's partial outputs (splits x n x d floats, 16 MB) and one arrival counter per output
// tile, per stream (cuda/launch.h's SplitKScratch; a CudaBackend owns one for its stream).
constexpr size_t kGemmSplitScratchFloats = (size_t)4 << 20;
constexpr int kGemmSplitMaxTiles = 4096;

// The cost model's GPU (the H100 SXM datasheet) and kernel facts; see the top.
constexpr double kGemmClockHz = 1.98e9;
constexpr double kGemmFmaPerClock = 128;      // fp32, per SM
constexpr double kGemmDramBytesPerSec = 3.35e12;
constexpr double kGemmWarpsForFullRate = 8;   // 2 per scheduler
constexpr int kGemmSmThreads = 512;           // 64K registers / 128 per thread (__launch_bounds__)
constexpr double kGemmSmSharedBytes = 227 * 1024;
constexpr double kGemmL2RoundTripClocks = 800;
constexpr double kGemmSmL2BytesPerClock = 64;

struct GemmPlan {
    int version = 0;       // 1..7
    int tile = -1;         // GemmTileId for versions 6 and 7, else -1
    int splits = 1;        // version 7: blocks per output tile, each over a slice of k
    const char* why = "";  // the rule that chose it
};

inline long long gemm_ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// Output tiles of a tile configuration (blocks per split).
inline long long gemm_tile_count(int tile, int n, int d) {
    return gemm_ceil_div(n, kGemmTiles[tile].bm) * gemm_ceil_div(d, kGemmTiles[tile].bn);
}

// k per split: ceil(k / splits) rounded up to the tile's bk (so a slice is whole stages).
inline int gemm_split_k_slice(int tile, int k, int splits) {
    const int bk = kGemmTiles[tile].bk;
    return (int)(gemm_ceil_div(gemm_ceil_div(k, splits), bk) * bk);
}

// Whether S splits of k are allowed for this tile and shape (see the top), counted as the
// kernel runs them: ceil(k / slice), which the rounding of the slice may make fewer than S.
inline bool gemm_split_allowed(int tile, int splits, int n, int k, int d) {
    if (splits == 1) return true;
    if (splits < 1 || splits > kGemmMaxSplits || k / splits < kGemmMinSplitK) return false;
    if ((double)splits * n * d > (double)kGemmSplitScratchFloats) return false;
    return gemm_tile_count(tile, n, d) <= kGemmSplitMaxTiles;
}

// The model's time of one launch in microseconds (see the top): version 5 (tile -1), or the
// warp-tiled kernel with `tile` and `splits`, on a GPU with `sms` multiprocessors.
inline double gemm_model_us(int version, int tile, int splits, int n, int k, int d, int sms) {
    const double rate = kGemmFmaPerClock * kGemmClockHz;  // per SM
    double bytes = 4.0 * ((double)d * k + (double)n * k + (double)n * d);
    if (version == 5) {  // a warp per w row, 8 per block; rows not padded; x from L1
        const double busiest = (double)gemm_ceil_div(gemm_ceil_div(d, 8), sms) * 8.0 * n * k;
        return std::max(bytes / kGemmDramBytesPerSec, busiest / rate) * 1e6;
    }
    const GemmTile& t = kGemmTiles[tile];
    const long long tiles = gemm_tile_count(tile, n, d), blocks = tiles * splits;
    const double slice = gemm_split_k_slice(tile, k, splits);
    if (splits > 1) bytes += 2.0 * 4.0 * splits * (double)n * d;  // partials written, then read
    const double smem = 4.0 * t.stages * (t.bm + t.bn) * (t.bk + 4);
    const long long fit = std::max(1, std::min(kGemmSmThreads / t.threads, (int)(kGemmSmSharedBytes / smem)));
    const long long per_sm = gemm_ceil_div(blocks, sms);
    const double warps = (double)std::min(per_sm, fit) * t.threads / 32;
    const double issue = 4.0 * t.tm * t.tn / (4.0 * t.tm * t.tn + t.tm + t.tn + 4);
    const double busy = std::min(1.0, warps / kGemmWarpsForFullRate) * issue;
    const double compute = per_sm * (double)t.bm * t.bn * slice / (rate * busy);
    double sum = 0;
    if (splits > 1) {
        const double block_bytes_per_clock =
            std::min(kGemmSmL2BytesPerClock, t.threads * 16.0 * std::min(splits, kGemmMaxSplits) / kGemmL2RoundTripClocks);
        sum = (double)gemm_ceil_div(tiles, sms) * splits * t.bm * t.bn * 4.0 / block_bytes_per_clock / kGemmClockHz;
    }
    return (std::max(bytes / kGemmDramBytesPerSec, compute) + sum) * 1e6;
}

inline double gemm_model_us(const GemmPlan& p, int n, int k, int d, int sms) {
    return gemm_model_us(p.version, p.tile, p.splits, n, k, d, sms);
}

// The warp-tiled plan the model says is fastest: tiles in the order of kGemmTiles' rows below
// (larger tiles first: they read each w and x element fewer times from L2, which the model
// leaves out) and splits from 1 up; a later candidate must be 2% faster to win, so near-ties
// go to the larger tile and fewer splits.
inline GemmPlan gemm_best_tiled(int n, int k, int d, int sms) {
    static constexpr int kOrder[GEMM_TILES] = {GEMM_TILE_128x128, GEMM_TILE_128x64, GEMM_TILE_64x64,
                                               GEMM_TILE_32x64,   GEMM_TILE_16x64,  GEMM_TILE_16x32};
    GemmPlan best;
    double best_us = 0;
    for (int tile : kOrder)
        for (int s = 1; s <= kGemmMaxSplits; s++) {
            if (!gemm_split_allowed(tile, s, n, k, d)) break;  // fewer values of k per split from here on
            const int splits = s == 1 || k == 0 ? 1 : (int)gemm_ceil_div(k, gemm_split_k_slice(tile, k, s));
            if (splits != s) continue;  // the rounded slice runs fewer: that count comes (or came) itself
            const double us = gemm_model_us(7, tile, splits, n, k, d, sms);
            if (best.tile < 0 || us < best_us * 0.98) {
                best.tile = tile;
                best.splits = splits;
                best_us = us;
            }
        }
    best.version = best.tile == GEMM_TILE_128x128 && best.splits == 1 ? 6 : 7;
    return best;
}

// version 0: matrix-vector up to 4 rows, then the model's fastest warp-tiled plan; 1..5: that
// version; 6: 128x128 tiles, never split; 7: the model's fastest warp-tiled plan, reported as
// version 7 whatever its tile. sms >= 1.
inline GemmPlan gemm_plan(int version, int n, int k, int d, int sms) {
    GemmPlan p;
    p.version = version;
    if (version >= 1 && version <= 5) {
        p.why = "asked for";
        return p;
    }
    if (version == 6) {
        p.tile = GEMM_TILE_128x128;
        p.why = "asked for";
        return p;
    }
    if (version == 0 && n <= kGemmMatvecMaxRows) {
        p.version = 5;
        p.why = "n <= 4: matrix-vector";
        return p;
    }
    p = gemm_best_tiled(n, k, d, sms);
    if (version == 7) {
        p.version = 7;
        p.why = "asked for: the cost model's tile and splits";
    } else {
        p.why = "the cost model's fastest tile and splits";
    }
    return p;
}
