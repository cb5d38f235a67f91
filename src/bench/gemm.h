// kvshare bench gemm: the CPU products at the projection shapes of real models, version 1
// (reference/ops.h, reference/backward.h) and version 2 (reference/matmul_blocked.h) against
// OpenBLAS's cblas_sgemm, in GFLOP/s with their ratios, per thread count: what bench kernels
// does for the GPU against cuBLAS (walkthrough 1.10, DESIGN.md section 7).
//
// OpenBLAS is the baseline here and nowhere else, so it is loaded with dlopen when the
// benchmark runs (Debian's libopenblas0); without it the table says so and goes on.
#pragma once
#include <string>
#include <vector>

// One projection of a model's layer: x (n, k) @ w (d, k)^T.
struct GemmShape {
    std::string model;  // the preset
    std::string name;   // q, kv, o, up, down
    int k = 0, d = 0;
};
// A preset's projections: q (dim -> q_dim), kv (dim -> kv_dim: W_K and W_V), o (q_dim ->
// dim), up (dim -> hidden: W1 and W3), down (hidden -> dim). An unknown preset is an error.
std::vector<GemmShape> gemm_shapes(const std::string& preset);

// The three products the CPU path runs: the forward, and the two of its backward.
enum class GemmProduct { Forward, BackwardX, BackwardW };
const char* gemm_product_name(GemmProduct p);     // "forward", "dx", "dw"
GemmProduct parse_gemm_product(const std::string& s);

struct GemmBenchOptions {
    std::vector<std::string> models = {"smollm2-135m", "stories110M", "tinyllama"};
    std::vector<int> rows = {1, 16, 64, 512};
    std::vector<int> threads = {1, 2};
    std::vector<GemmProduct> products = {GemmProduct::Forward};
    int repeats = 5;
    bool naive = true;         // --no-naive: version 1 is slow at many rows
    std::string blas;          // a library to load; "" the usual names; "none" no baseline
    double min_seconds = 0.02; // each timing repeats the product until it takes this long
    bool help = false;         // --help: print the usage, run nothing
};
// argv[0] is "gemm"; then --models, --rows, --threads, --products, --repeats, --no-naive,
// --blas, every value checked (an unknown preset or product, a count out of range, an
// empty list).
GemmBenchOptions parse_gemm_bench(int argc, char** argv);

// One line of the table: GFLOP/s (2 n k d flops per product), 0 where not measured.
struct GemmRow {
    int threads = 1;
    GemmShape shape;
    GemmProduct product = GemmProduct::Forward;
    int n = 0;
    double naive = 0, blocked = 0, blas = 0;
};

// OpenBLAS loaded by dlopen: `ok` with cblas_sgemm and openblas_set_num_threads found, or
// `why` it is not there. The library stays loaded until exit.
struct OpenBlas {
    bool ok = false;
    std::string why;      // when not ok: what failed
    std::string library;  // the name that loaded
    std::string config;   // openblas_get_config(), when it has one
    // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int) = nullptr;
    void (*set_threads)(int) = nullptr;
};
// `path` as given, or the usual names when empty; "none" gives a not-ok one on purpose.
OpenBlas load_openblas(const std::string& path);

// Times every (threads, model, projection, rows, product) of the options, each round running
// version 1, version 2 and OpenBLAS in turn (medians of the rounds). Checks each result on
// the way: version 2's forward equal to version 1's to the last bit, OpenBLAS within the
// GEMM bound of DESIGN.md section 6; a failed check is an error.
std::vector<GemmRow> run_gemm_bench(const GemmBenchOptions& o, const OpenBlas& blas);

// The table and its summary: one line per row with the ratios blocked/naive and
// blocked/openblas, then per thread count the lowest and median blocked/openblas at 64 rows
// or more, as headline lines (gemm_cpu_tT_min_pct_openblas_n64plus, ...).
std::string format_gemm_table(const std::vector<GemmRow>& rows, const OpenBlas& blas);

int bench_gemm(int argc, char** argv);
