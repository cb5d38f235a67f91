// The kernel benchmark (see bench.h). cuBLAS appears here only, as the GEMM baseline.
#include "cuda/bench.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "src/model/backend.h"
#include "src/bench/common.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cublas_v2.h>
#include <dlfcn.h>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace kvk;

namespace {

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                          \
            throw std::runtime_error(std::string("cuBLAS error ") + std::to_string((int)st_) + " (" #call ")"); \
    } while (0)

// Deterministic uniform [lo, hi) values from a hash of the index: no host copy of big arrays.
__global__ void fill_kernel(float* p, size_t n, uint32_t seed, float lo, float hi) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ (uint32_t)(i >> 32) ^ seed * 0x9E3779B9u;
        h ^= h >> 16;
        h *= 0x85EBCA6Bu;
        h ^= h >> 13;
        h *= 0xC2B2AE35u;
        h ^= h >> 16;
        p[i] = lo + (hi - lo) * (h >> 8) * (1.0f / 16777216.0f);
    }
}

__global__ void fill_tokens_kernel(int* p, size_t n, int vocab) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = (int)((i * 7919u) % (size_t)vocab);
}

// cuBLAS is the GEMM baseline here and nowhere else, so it is loaded when this benchmark runs
// (dlopen) instead of being linked into kvshare: libcublasLt alone is over 500 MB, and linking
// it cost every kvshare command, `--help` included, about 0.2 s of start-up (chapter 9.2).
struct Cublas {  // true fp32 SGEMM: the default math mode uses no TF32
    void* lib = nullptr;
    decltype(&cublasCreate_v2) create = nullptr;
    decltype(&cublasDestroy_v2) destroy = nullptr;
    decltype(&cublasSetMathMode) set_math_mode = nullptr;
    decltype(&cublasSgemm_v2) sgemm = nullptr;
    cublasHandle_t h = nullptr;
    Cublas() {
        for (const char* name : {"libcublas.so", "libcublas.so.13", "libcublas.so.12"})
            if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
        if (!lib) throw std::runtime_error(std::string("cannot load cuBLAS, the GEMM baseline: ") + dlerror());
        symbol(create, "cublasCreate_v2");
        symbol(destroy, "cublasDestroy_v2");
        symbol(set_math_mode, "cublasSetMathMode");
        symbol(sgemm, "cublasSgemm_v2");
        CUBLAS_CHECK(create(&h));
        CUBLAS_CHECK(set_math_mode(h, CUBLAS_DEFAULT_MATH));
    }
    template <class F>
    void symbol(F& f, const char* name) {
        f = reinterpret_cast<F>(dlsym(lib, name));
        if (!f) throw std::runtime_error(std::string("cuBLAS lacks ") + name);
    }
    ~Cublas() {  // the library stays loaded until exit: unloading CUDA libraries is not worth the risk
        if (h && destroy(h) != CUBLAS_STATUS_SUCCESS) std::fprintf(stderr, "cublasDestroy failed\n");
    }
    Cublas(const Cublas&) = delete;
    Cublas& operator=(const Cublas&) = delete;
};

template <class T>
struct Dev {  // a device array, freed on scope exit
    T* p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T))); }
    ~Dev() {
        cudaError_t err = cudaFree(p);
        if (err != cudaSuccess) std::fprintf(stderr, "cudaFree: %s\n", cudaGetErrorString(err));
    }
    Dev(const Dev&) = delete;
    Dev& operator=(const Dev&) = delete;
};

void fill(Dev<float>& a, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    fill_kernel<<<stride_grid(a.n, 256), 256>>>(a.p, a.n, seed, lo, hi);
    CUDA_CHECK_LAST();
}

struct Options {
    int size = 4096, runs = 10, warmup = 2;
    std::vector<std::string> filters;
    bool wants(const std::string& kernel) const {
        if (filters.empty()) return true;
        for (const std::string& f : filters)
            if (kernel.find(f) != std::string::npos) return true;
        return false;
    }
};

// Median time of `runs` launches of f after `warmup`, in ms, with device events. Slow
// kernels (over 0.2 s) get 3 timed runs.
double time_ms(const Options& opt, const std::function<void()>& f) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    auto one_run = [&]() {
        CUDA_CHECK(cudaEventRecord(a));
        f();
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        return ms;
    };
    int runs = opt.runs;
    for (int i = 0; i < std::max(1, opt.warmup); i++)
        if (one_run() > 200.0f) runs = std::min(runs, 3);
    std::vector<float> t;
    for (int i = 0; i < runs; i++) t.push_back(one_run());
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void print_header() {
    std::printf("%-18s %-24s %-30s %10s %18s %18s %7s  %s\n", "kernel", "version", "shape", "time ms", "achieved",
                "ceiling", "%", "note");
}

// Every measured row's % of its ceiling, for the headline figures at the end.
struct Measured {
    std::string kernel, version, shape;
    double pct;
};
std::vector<Measured> measured;

// rate in GFLOP/s or GB/s (unit), against a ceiling in the same unit
void print_row(const std::string& kernel, const std::string& version, const std::string& shape, double ms, double rate,
               const char* unit, double ceiling, const std::string& note = "") {
    if (ceiling > 0 && version != "ceiling" && version.rfind("cuBLAS", 0) != 0)
        measured.push_back({kernel, version, shape, 100.0 * rate / ceiling});
    char a[64], c[64], pct[16];
    std::snprintf(a, sizeof a, "%.1f %s", rate, unit);
    if (ceiling > 0) {
        std::snprintf(c, sizeof c, "%.1f %s", ceiling, unit);
        std::snprintf(pct, sizeof pct, "%.1f", 100.0 * rate / ceiling);
    } else {
        std::snprintf(c, sizeof c, "-");
        std::snprintf(pct, sizeof pct, "-");
    }
    std::printf("%-18s %-24s %-30s %10.4f %18s %18s %7s  %s\n", kernel.c_str(), version.c_str(), shape.c_str(), ms, a, c,
                pct, note.c_str());
    std::fflush(stdout);
}

std::string vname(int v, const char* name) { return std::to_string(v) + " " + name; }

// The memory ceiling: device-to-device copy of 256 MiB, counted as read + write (the same
// measurement bench plans compares decode against: cuda_copy_gbs in cuda/device.cu).
double copy_ceiling(const Options& opt) {
    double ms = 0;
    const double gbs = cuda_copy_gbs((size_t)256 << 20, opt.runs, std::max(1, opt.warmup), &ms);
    print_row("memcpy d2d", "ceiling", "256 MiB", ms, gbs, "GB/s", gbs, "read + write");
    return gbs;
}

// out (n, d) = x (n, k) @ w (d, k)^T in cuBLAS's column-major terms: out^T (d, n) = w x^T,
// i.e. op(A) = w^T of a k x d column-major matrix, op(B) = x^T stored as k x n.
void cublas_gemm(const Cublas& c, float* out, const float* x, const float* w, int n, int k, int d) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(c.sgemm(c.h, CUBLAS_OP_T, CUBLAS_OP_N, d, n, k, &one, w, k, x, k, &zero, out, d));
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, ref = 0;
    for (size_t i = 0; i < a.size(); i++) {
        const double e = (double)a[i] - b[i];
        diff += e * e;
        ref += (double)b[i] * b[i];
    }
    return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// cuBLAS SGEMM at size^3 (always: it is also the prefill attention ceiling); with the gemm
// filter, versions 1..4 at size^3 against it, and decode shapes (few rows, bandwidth-bound:
// weight bytes against the copy ceiling). Returns cuBLAS GFLOP/s at size^3.
double bench_gemm(const Options& opt, const Cublas& h, double copy_gbs) {
    double cublas_peak = 0;
    {
        const int n = opt.size, k = opt.size, d = opt.size;
        Dev<float> x((size_t)n * k), w((size_t)d * k), out((size_t)n * d), ref((size_t)n * d);
        fill(x, 2);
        fill(w, 3);
        const double flop = 2.0 * n * k * d;
        const std::string shape = std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(d);
        double ms = time_ms(opt, [&] { cublas_gemm(h, ref.p, x.p, w.p, n, k, d); });
        cublas_peak = flop / (ms * 1e-3) / 1e9;
        print_row("gemm", "cuBLAS SGEMM", shape, ms, cublas_peak, "GFLOP/s", cublas_peak, "ceiling (fp32, no TF32)");
        if (!opt.wants("gemm")) return cublas_peak;
        std::vector<float> want((size_t)n * d), got((size_t)n * d);
        CUDA_CHECK(cudaMemcpy(want.data(), ref.p, want.size() * sizeof(float), cudaMemcpyDeviceToHost));
        for (int v = 1; v <= gemm_versions(); v++) {
            if (v == 5) continue;  // matrix-vector: measured at decode shapes below
            CUDA_CHECK(cudaMemset(out.p, 0xFF, out.n * sizeof(float)));
            ms = time_ms(opt, [&] { gemm(v, out.p, x.p, w.p, n, k, d); });
            CUDA_CHECK(cudaMemcpy(got.data(), out.p, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
            char note[64];
            std::snprintf(note, sizeof note, "rel. err vs cuBLAS %.1e", rel_l2(got, want));
            print_row("gemm", vname(v, gemm_version_name(v)), shape, ms, flop / (ms * 1e-3) / 1e9, "GFLOP/s", cublas_peak, note);
        }
    }
    // decode: n = batch rows against a FFN-sized weight; the weight read dominates
    for (int n : {1, 8}) {
        const int k = 4096, d = 11008;
        Dev<float> x((size_t)n * k), w((size_t)d * k), out((size_t)n * d);
        fill(x, 4);
        fill(w, 5);
        const double bytes = 4.0 * ((double)d * k + (double)n * k + (double)n * d);
        const std::string shape = std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(d);
        double ms = time_ms(opt, [&] { cublas_gemm(h, out.p, x.p, w.p, n, k, d); });
        print_row("gemm (decode)", "cuBLAS SGEMM", shape, ms, bytes / (ms * 1e-3) / 1e9, "GB/s", copy_gbs, "reference point");
        for (int v : {4, 5}) {
            ms = time_ms(opt, [&] { gemm(v, out.p, x.p, w.p, n, k, d); });
            print_row("gemm (decode)", vname(v, gemm_version_name(v)), shape, ms, bytes / (ms * 1e-3) / 1e9, "GB/s", copy_gbs);
        }
    }
    return cublas_peak;
}

void bench_memory_bound(const Options& opt, double copy_gbs) {
    const double gb = 1e9;
    if (opt.wants("softmax")) {
        const int rows = 4096, n = 16384;
        Dev<float> x((size_t)rows * n);
        fill(x, 6, -5.0f, 5.0f);
        const double bytes = 2.0 * sizeof(float) * x.n;  // read + write, once each
        for (int v = 1; v <= softmax_versions(); v++) {
            const double ms = time_ms(opt, [&] { softmax_gpu(v, x.p, rows, n); });
            print_row("softmax", vname(v, softmax_version_name(v)), std::to_string(rows) + "x" + std::to_string(n), ms,
                      bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
        }
    }
    if (opt.wants("rmsnorm")) {
        const int n = 16384, dim = 4096;
        Dev<float> x((size_t)n * dim), out((size_t)n * dim), w(dim);
        fill(x, 7);
        fill(w, 8);
        const double bytes = 2.0 * sizeof(float) * x.n;
        for (int v = 1; v <= rmsnorm_versions(); v++) {
            const double ms = time_ms(opt, [&] { rmsnorm_gpu(v, out.p, x.p, w.p, n, dim, 1e-5f); });
            print_row("rmsnorm", vname(v, rmsnorm_version_name(v)), std::to_string(n) + "x" + std::to_string(dim), ms,
                      bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
        }
    }
    if (opt.wants("rope")) {
        const int n = 16384, heads = 32, hs = 128;
        Dev<float> x((size_t)n * heads * hs);
        Dev<int> pos(n);
        fill(x, 9);
        fill_tokens_kernel<<<stride_grid(pos.n, 256), 256>>>(pos.p, pos.n, 4096);
        CUDA_CHECK_LAST();
        const double bytes = 2.0 * sizeof(float) * x.n;
        for (RopeStyle st : {RopeStyle::Adjacent, RopeStyle::HalfSplit}) {
            const double ms = time_ms(opt, [&] { rope_gpu(x.p, pos.p, n, heads, hs, 10000.0f, st); });
            print_row("rope", st == RopeStyle::Adjacent ? "adjacent pairs" : "half split",
                      std::to_string(n) + "x" + std::to_string(heads) + "x" + std::to_string(hs), ms,
                      bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
        }
    }
    if (opt.wants("swiglu") || opt.wants("residual")) {
        const size_t n = (size_t)64 << 20;
        Dev<float> a(n), b(n);
        fill(a, 10);
        fill(b, 11);
        const double bytes = 3.0 * sizeof(float) * n;  // two reads, one write
        if (opt.wants("swiglu")) {
            const double ms = time_ms(opt, [&] { swiglu_gpu(a.p, b.p, n); });
            print_row("swiglu", "float4 grid-stride", std::to_string(n), ms, bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
        }
        if (opt.wants("residual")) {
            const double ms = time_ms(opt, [&] { residual_add_gpu(a.p, b.p, n); });
            print_row("residual add", "float4 grid-stride", std::to_string(n), ms, bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
        }
    }
    if (opt.wants("embedding")) {
        const int vocab = 32000, dim = 4096, n = 16384;
        Dev<float> table((size_t)vocab * dim), out((size_t)n * dim);
        Dev<int> tokens(n);
        fill(table, 12);
        fill_tokens_kernel<<<stride_grid(tokens.n, 256), 256>>>(tokens.p, tokens.n, vocab);
        CUDA_CHECK_LAST();
        const double bytes = 2.0 * sizeof(float) * out.n;  // rows read + rows written
        const double ms = time_ms(opt, [&] { embedding_gpu(out.p, table.p, tokens.p, n, dim); });
        print_row("embedding", "row copy", std::to_string(n) + " tokens x " + std::to_string(dim), ms,
                  bytes / (ms * 1e-3) / gb, "GB/s", copy_gbs);
    }
}

void bench_attention(const Options& opt, double cublas_gflops, double copy_gbs) {
    const int n_heads = 32, n_kv = 8, hs = 128, q_dim = n_heads * hs, kv_dim = n_kv * hs;
    if (opt.wants("attention") || opt.wants("prefill")) {
        // one 2048-token causal prompt: compute-bound, against the SGEMM rate
        const int batch = 1, n = 2048, ctx = 2048;
        Dev<float> q((size_t)batch * n * q_dim), out(q.n), k((size_t)batch * ctx * kv_dim), v(k.n);
        fill(q, 13);
        fill(k, 14);
        fill(v, 15);
        const double pairs = (double)n * (n + 1) / 2.0;  // visible (query, key) pairs per head
        const double flop = 4.0 * hs * pairs * n_heads * batch;
        const std::string shape = "b1 n2048 h32/8 d128 causal";
        for (int ver = 1; ver <= attention_prefill_versions(); ver++) {
            const double ms = time_ms(opt, [&] {
                attention_prefill_gpu(ver, out.p, q.p, k.p, v.p, batch, n, 0, ctx, false, n_heads, n_kv, hs);
            });
            print_row("attention prefill", vname(ver, attention_prefill_version_name(ver)), shape, ms,
                      flop / (ms * 1e-3) / 1e9, "GFLOP/s", cublas_gflops, "ceiling: SGEMM rate");
        }
    }
    if (opt.wants("attention") || opt.wants("decode")) {
        // reading the K/V cache dominates: bytes against the copy ceiling
        struct Case {
            int batch, ctx;
        };
        for (Case c : {Case{8, 4096}, Case{1, 32768}}) {
            const int pos = c.ctx - 1;
            Dev<float> q((size_t)c.batch * q_dim), out(q.n), k((size_t)c.batch * c.ctx * kv_dim), v(k.n),
                workspace(attention_decode_workspace_floats(c.batch, c.ctx, n_heads, hs));
            fill(q, 16);
            fill(k, 17);
            fill(v, 18);
            const double bytes = 2.0 * sizeof(float) * (double)c.batch * (pos + 1) * kv_dim;
            const std::string shape = "b" + std::to_string(c.batch) + " pos " + std::to_string(pos) + " h32/8 d128";
            for (int ver = 1; ver <= attention_decode_versions(); ver++) {
                const double ms = time_ms(opt, [&] {
                    attention_decode_gpu(ver, out.p, q.p, k.p, v.p, c.batch, pos, c.ctx, false, n_heads, n_kv, hs,
                                         workspace.p, workspace.n);
                });
                print_row("attention decode", vname(ver, attention_decode_version_name(ver)), shape, ms,
                          bytes / (ms * 1e-3) / 1e9, "GB/s", copy_gbs);
            }
        }
    }
}

// The best version's % of its ceiling, per shape of `kernel` (shapes starting with `shape`).
std::map<std::string, double> best_per_shape(const std::string& kernel, const std::string& shape = "") {
    std::map<std::string, double> best;
    for (const Measured& m : measured)
        if (m.kernel == kernel && m.shape.rfind(shape, 0) == 0) best[m.shape] = std::max(best[m.shape], m.pct);
    return best;
}

// The headline figures (bench/gpu-report.sh lists the keys): each kernel's best version,
// and for a group of kernels or shapes the weakest of those bests.
void print_headlines(const Options& opt, double copy_gbs, double cublas_gflops) {
    const std::string n = std::to_string(opt.size);
    print_headline("copy_gbs", copy_gbs, "GB/s");
    print_headline("cublas_sgemm_gflops_" + n, cublas_gflops, "GFLOP/s");
    auto lowest = [](const std::map<std::string, double>& m) {
        double v = 1e300;
        for (const auto& kv : m) v = std::min(v, kv.second);
        return v;
    };
    if (!best_per_shape("gemm").empty()) print_headline("gemm_best_pct_cublas_" + n, lowest(best_per_shape("gemm")), "%");
    if (!best_per_shape("gemm (decode)", "1x").empty())
        print_headline("gemm_decode_b1_best_pct_copy", lowest(best_per_shape("gemm (decode)", "1x")), "%");
    std::map<std::string, double> memory;  // kernel -> its best version over its shapes
    for (const char* k : {"softmax", "rmsnorm", "rope", "swiglu", "residual add", "embedding"})
        for (const auto& kv : best_per_shape(k)) memory[k] = std::max(memory[k], kv.second);
    if (!memory.empty()) print_headline("memory_kernels_pct_copy", lowest(memory), "%");
    if (!best_per_shape("attention prefill").empty())
        print_headline("attention_prefill_best_pct_sgemm", lowest(best_per_shape("attention prefill")), "%");
    if (!best_per_shape("attention decode").empty())
        print_headline("attention_decode_best_pct_copy", lowest(best_per_shape("attention decode")), "%");
}

// --size, --runs, --warmup: the ranges --help states.
int parse_option(const std::string& value, const std::string& option) {
    const int hi = option == "--size" ? 16384 : 1000;
    return parse_int_in(value, "kvshare bench kernels " + option, option == "--warmup" ? 0 : 1, hi);
}

}  // namespace

int bench_kernels(int argc, char** argv) {
    Options opt;
    for (int i = 0; i < argc; i++) {
        const std::string a = argv[i];
        if (i == 0 && a == "kernels") continue;
        if (a == "--help" || a == "-h") {
            std::printf(
                "usage: kvshare bench kernels [FILTER...] [--size N] [--runs R] [--warmup W]\n"
                "  times every version of every CUDA kernel (median of R runs after W warm-up runs, device\n"
                "  events) against ceilings measured on the same GPU: cuBLAS SGEMM for GEMM and prefill\n"
                "  attention, a device-to-device copy for the memory-bound kernels.\n"
                "  FILTER: only kernels whose name contains it (gemm, softmax, rmsnorm, rope, swiglu,\n"
                "  residual, embedding, attention, prefill, decode). --size: GEMM size N (N^3, default 4096,\n"
                "  1..16384, its four N x N matrices must fit the GPU's free memory); --runs (default 10,\n"
                "  1..1000); --warmup (default 2, 0..1000).\n");
            return 0;
        }
        if (a == "--size" || a == "--runs" || a == "--warmup") {
            if (i + 1 >= argc) fail("kvshare bench kernels: option " + a + " needs a value");
            const int v = parse_option(argv[++i], a);
            (a == "--size" ? opt.size : a == "--runs" ? opt.runs : opt.warmup) = v;
        } else if (!a.empty() && a[0] == '-') {
            fail("kvshare bench kernels: unknown option '" + a + "' (see --help)");
        } else {
            opt.filters.push_back(a);
        }
    }
    std::string why;
    if (!cuda_available(&why)) fail("kvshare bench kernels: " + why);
    // the GEMM's x, w, out and cuBLAS's reference: four size x size matrices
    check_memory(MemoryNeed().gpu("GEMM matrices", sat_product({4, (size_t)opt.size, (size_t)opt.size, sizeof(float)})),
                 "kvshare bench kernels", "a smaller --size");
    int dev = 0;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("GPU: %s, %d SMs, %.1f GiB; median of %d runs after %d warm-up runs\n\n", prop.name,
                prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, opt.runs, opt.warmup);
    print_header();
    const double copy_gbs = copy_ceiling(opt);
    Cublas cublas;
    const double cublas_gflops = bench_gemm(opt, cublas, copy_gbs);
    bench_memory_bound(opt, copy_gbs);
    bench_attention(opt, cublas_gflops, copy_gbs);
    print_headlines(opt, copy_gbs, cublas_gflops);
    return 0;
}
