// Which GEMM kernel gemm(0, ...) runs for a shape: a pure function of (n, k, d, SM count),
// plain C++ (no CUDA) so the tests check it on any machine. The kernels are in cuda/gemm.cu;
// walkthrough chapter 4.2 explains the table. out (n, d) = x (n, k) @ w (d, k)^T: n is the
// batch (decode) or the prompt length (prefill), d and k are the weight's shape.
//
// The choice, first match wins (sms = multiprocessors of the GPU):
//
//   rule                            kernel                    why
//   n <= 4                          5 matrix-vector           a warp streams one w row and dots it with every x row from
//                                                             L1: L1 then carries (1 + n) x the bytes of w, which at more
//                                                             than 4 rows outruns what L1 delivers while DRAM streams w
//   n <= 128                        7, one block row          a block spans every x row (bm = n rounded up to 16, 32, 64,
//                                   (skinny)                  128), so each w element crosses DRAM once, and the x rows
//                                                             sit in shared memory beside it; <= 15 padding rows
//   128x128 grid >= 1.5 x sms       6 warp-tiled 128x128      the tile with the fewest loads per multiply-add; it runs two
//                                                             blocks per SM, and from 1.5 blocks per SM no SM is idle and
//                                                             most have the two blocks it was built for
//   otherwise                       7, 128 x 64 tiles         twice the blocks of 128x128 for the same work
//
// and for version 7, split K: S = 2, 4, ... 16 blocks per output tile, each over a slice of k,
// until the grid has 1.5 blocks per SM ("about two waves": every SM busy, most with a second
// block to overlap one block's barrier and pipeline waits with the other's arithmetic), as long
// as every slice keeps >= 128 values of k (a few pipeline stages, so the prologue stays cheap)
// and the S partial outputs fit the per-device scratch of kGemmSplitScratchFloats.
// The thresholds come from the arithmetic in chapter 4.2, not from measurements: no GPU has
// run these kernels yet. `kvshare bench kernels` prints each pick next to the alternatives,
// which is what a first GPU session should tune them from.
#pragma once
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

enum GemmTileId { GEMM_TILE_128x128, GEMM_TILE_16x64, GEMM_TILE_32x64, GEMM_TILE_64x64, GEMM_TILE_128x64, GEMM_TILES };

// The skinny tiles (16..64 rows) take deeper stages of 32 k: they are bound by streaming w, and
// a block keeps 3 stages = 30..49 KB of tiles in flight. The 8x8-per-thread tiles are bound by
// arithmetic and take 16 k per stage (less shared memory, two blocks per SM).
constexpr GemmTile kGemmTiles[GEMM_TILES] = {
    {"128x128", 128, 128, 8, 8, 16, 3, 256},
    {"16x64", 16, 64, 4, 4, 32, 4, 64},
    {"32x64", 32, 64, 4, 4, 32, 4, 128},
    {"64x64", 64, 64, 4, 4, 32, 4, 256},
    {"128x64", 128, 64, 8, 8, 16, 3, 128},
};

constexpr int kGemmMatvecMaxRows = 4;
constexpr int kGemmSkinnyMaxRows = 128;
constexpr double kGemmMinBlocksPerSM = 1.5;
constexpr int kGemmMaxSplits = 16;
constexpr int kGemmMinSplitK = 128;
// Split K's partial outputs (splits x n x d floats, 16 MB) and one arrival counter per output
// tile live in fixed __device__ arrays, one per GPU (cuda/gemm.cu).
constexpr size_t kGemmSplitScratchFloats = (size_t)4 << 20;
constexpr int kGemmSplitMaxTiles = 4096;

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

// The tile version 7 uses for n rows: the smallest with bm >= n, 128 x 64 beyond 128 rows.
inline int gemm_small_grid_tile(int n) {
    if (n <= 16) return GEMM_TILE_16x64;
    if (n <= 32) return GEMM_TILE_32x64;
    if (n <= 64) return GEMM_TILE_64x64;
    return GEMM_TILE_128x64;
}

// Splits for version 7: doubled while the grid has fewer than 1.5 blocks per SM and the
// limits above allow; then as many as the rounded slice needs (ceil(k / slice)).
inline int gemm_split_count(int tile, int n, int k, int d, int sms) {
    const long long tiles = gemm_tile_count(tile, n, d);
    const double want = kGemmMinBlocksPerSM * sms;
    int s = 1;
    while (s < kGemmMaxSplits && (double)(tiles * s) < want) {
        const int next = 2 * s;
        if (k / next < kGemmMinSplitK) break;
        if ((double)next * n * d > (double)kGemmSplitScratchFloats) break;
        if (tiles > kGemmSplitMaxTiles) break;
        s = next;
    }
    if (s == 1 || k == 0) return 1;
    return (int)gemm_ceil_div(k, gemm_split_k_slice(tile, k, s));
}

// version 0: the table above; 1..5: that version; 6: 128x128 tiles, never split; 7: the tile
// for n, split as above. sms >= 1.
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
    auto small_grid = [&](const char* why) {
        p.version = 7;
        p.tile = gemm_small_grid_tile(n);
        p.splits = gemm_split_count(p.tile, n, k, d, sms);
        p.why = why;
        return p;
    };
    if (version == 7) return small_grid("asked for");
    // version 0
    if (n <= kGemmMatvecMaxRows) {
        p.version = 5;
        p.why = "n <= 4: matrix-vector";
        return p;
    }
    if (n <= kGemmSkinnyMaxRows) return small_grid("n <= 128: skinny, one block row");
    if ((double)gemm_tile_count(GEMM_TILE_128x128, n, d) >= kGemmMinBlocksPerSM * sms) {
        p.version = 6;
        p.tile = GEMM_TILE_128x128;
        p.why = "128x128 grid >= 1.5 blocks per SM";
        return p;
    }
    return small_grid("128x128 grid < 1.5 blocks per SM: 128x64 tiles, split K");
}
