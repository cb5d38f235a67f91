// The kernel benchmark (see bench.h). cuBLAS appears here only, as the GEMM baseline.
#include "cuda/bench.h"
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"
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

void print_row(const std::string& kernel, const std::string& version, const std::string& shape, double ms, double rate,
               const char* unit, double ceiling, const std::string& note = "");

// Holds the GPU for `ns` nanoseconds, so that the launches queued behind it run back to back.
__global__ void spin_kernel(long long ns) {
    long long t0 = 0, t = 0;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

// Per-launch time in ms of launch(i), for kernels too short to time one by one: a launch costs
// the host microseconds, and a GPU that waits for the next one measures the host. So each
// timed batch of `batch` launches queues behind a spin kernel and runs back to back; the
// median over `reps` batches, after one warm-up batch. `batch` adapts to about 1 ms.
double time_batched_ms(int reps, const std::function<void(int)>& launch) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    int batch = 1, next = 0;
    auto one_batch = [&](bool spin) {
        if (spin) {
            spin_kernel<<<1, 1>>>(50000 + 20000LL * batch);  // 20 us of host time per queued launch
            CUDA_CHECK_LAST();
        }
        CUDA_CHECK(cudaEventRecord(a));
        for (int i = 0; i < batch; i++) launch(next++);
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        return (double)ms / batch;
    };
    const double first = one_batch(false);  // warm-up, and the size of a batch
    batch = std::max(1, std::min(32, (int)std::lround(1.0 / std::max(first, 1e-4))));
    std::vector<double> t;
    for (int r = 0; r < std::max(1, reps); r++) t.push_back(one_batch(batch > 1));
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// sum (a - b)^2 and sum b^2 over n floats, into acc[0], acc[1]
__global__ void diff_kernel(const float* a, const float* b, size_t n, double* acc) {
    __shared__ double red[2][256];
    double d2 = 0, b2 = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const double e = (double)a[i] - b[i];
        d2 += e * e;
        b2 += (double)b[i] * b[i];
    }
    red[0][threadIdx.x] = d2;
    red[1][threadIdx.x] = b2;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            red[0][threadIdx.x] += red[0][threadIdx.x + s];
            red[1][threadIdx.x] += red[1][threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        atomicAdd(&acc[0], red[0][0]);
        atomicAdd(&acc[1], red[1][0]);
    }
}

// ||a - b|| / ||b|| on the device (NaN anywhere makes it NaN): no 262 MB copies to the host.
double rel_l2_device(const float* a, const float* b, size_t n) {
    double* acc = nullptr;
    CUDA_CHECK(cudaMalloc(&acc, 2 * sizeof(double)));
    CUDA_CHECK(cudaMemset(acc, 0, 2 * sizeof(double)));
    diff_kernel<<<stride_grid(n, 256), 256>>>(a, b, n, acc);
    CUDA_CHECK_LAST();
    double h[2] = {0, 0};
    CUDA_CHECK(cudaMemcpy(h, acc, sizeof h, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(acc));
    return h[1] > 0 ? std::sqrt(h[0] / h[1]) : std::sqrt(h[0]);
}

// The fp32 FMA rate this GPU sustains: 8 independent multiply-add chains per thread, a full
// grid, no memory traffic to speak of. The ceiling for prefill attention.
__global__ void fma_peak_kernel(float* out, int iters) {
    float a[8];
#pragma unroll
    for (int j = 0; j < 8; j++) a[j] = threadIdx.x * 1e-3f + j;
    const float m = 0.999f, c = 1e-3f;
    for (int i = 0; i < iters; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) a[j] = a[j] * m + c;
    float s = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) s += a[j];
    out[(size_t)blockIdx.x * blockDim.x + threadIdx.x] = s;  // keeps the chains alive
}

double fma_peak_gflops(const Options& opt) {
    const int blocks = num_sms() * 8, threads = 256, iters = 1 << 14;
    Dev<float> out((size_t)blocks * threads);
    const double ms = time_ms(opt, [&] {
        fma_peak_kernel<<<blocks, threads>>>(out.p, iters);
        CUDA_CHECK_LAST();
    });
    const double flop = 2.0 * 8 * iters * (double)blocks * threads;
    const double gflops = flop / (ms * 1e-3) / 1e9;
    print_row("fp32 FMA peak", "8 chains / thread", std::to_string(blocks) + " x " + std::to_string(threads), ms, gflops,
              "GFLOP/s", gflops, "ceiling for prefill attention");
    return gflops;
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
               const char* unit, double ceiling, const std::string& note) {
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

// Headline figures that are not a row's % of its ceiling (print_headlines prints them).
std::vector<std::pair<std::string, double>> extra_pct_headlines;  // key, value in %
double prefill_best_gflops_2048 = 0;                                // for the % of the SGEMM rate

// cuBLAS SGEMM at size^3 (always: a reference rate for everything else); with the gemm
// filter, versions 1..7 at size^3 against it (the best one's share is a headline), and a
// decode shape (few rows, bandwidth-bound: weight bytes against the copy ceiling). Returns
// cuBLAS GFLOP/s at size^3.
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
        for (int v = 1; v <= gemm_versions(); v++) {
            if (v == 5) continue;  // matrix-vector: measured at decode shapes below
            CUDA_CHECK(cudaMemset(out.p, 0xFF, out.n * sizeof(float)));
            ms = time_ms(opt, [&] { gemm(v, out.p, x.p, w.p, n, k, d); });
            char note[64];
            std::snprintf(note, sizeof note, "rel. err vs cuBLAS %.1e", rel_l2_device(out.p, ref.p, out.n));
            const double gflops = flop / (ms * 1e-3) / 1e9;
            print_row("gemm", vname(v, gemm_version_name(v)), shape, ms, gflops, "GFLOP/s", cublas_peak, note);
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
        for (int v : {4, 5, 0}) {
            ms = time_ms(opt, [&] { gemm(v, out.p, x.p, w.p, n, k, d); });
            print_row("gemm (decode)", vname(v, gemm_version_name(v)), shape, ms, bytes / (ms * 1e-3) / 1e9, "GB/s", copy_gbs);
        }
    }
    return cublas_peak;
}

// Every projection of the two models at the rows the model runs (issue 14's list, and the
// shapes tests/test_cuda_kernels.cpp checks the dispatch table at).
struct ModelShape {
    const char* model;
    const char* proj;
    int k, d;
};
const ModelShape kModelShapes[] = {
    {"TinyLlama", "wq,wo", 2048, 2048}, {"TinyLlama", "wk,wv", 2048, 256}, {"TinyLlama", "w1,w3", 2048, 5632},
    {"TinyLlama", "w2", 5632, 2048},    {"TinyLlama", "classifier", 2048, 32000},
    {"stories15M", "wq..wo", 288, 288}, {"stories15M", "w1,w3", 288, 768},  {"stories15M", "w2", 768, 288},
    {"stories15M", "classifier", 288, 32000}};
const int kModelRows[] = {1, 4, 16, 32, 64, 128, 256, 512, 2048};

std::string plan_name(const GemmPlan& p) {
    std::string s = "v" + std::to_string(p.version);
    if (p.tile >= 0) s += std::string(" ") + kGemmTiles[p.tile].name;
    if (p.splits > 1) s += " S" + std::to_string(p.splits);
    return s;
}

// Each version and the dispatcher's pick (gemm(0, ...)) at every model shape, as % of cuBLAS
// at the same shape; up to 16 rows also the pick's bytes per second against the copy ceiling.
// In a model every layer's w is cold, so each launch reads a different copy of w, cycling
// through copies that add up to at least 1.5 x the L2 cache. Headlines over the TinyLlama shapes (DESIGN.md 7):
// the pick's lowest % of cuBLAS from 32 rows, and lowest % of copy below 32.
void bench_gemm_shapes(const Options& opt, const Cublas& h, double copy_gbs) {
    size_t max_w = 0, max_x = 0, max_out = 0;
    for (const ModelShape& m : kModelShapes) {
        max_w = std::max(max_w, (size_t)m.d * m.k);
        max_x = std::max(max_x, (size_t)2048 * m.k);
        max_out = std::max(max_out, (size_t)2048 * m.d);
    }
    int dev = 0, l2 = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    const size_t pool_floats = std::max(max_w, (size_t)l2 / sizeof(float) * 3);
    Dev<float> pool(pool_floats), x(max_x), out(max_out), ref(max_out);
    fill(pool, 20);
    fill(x, 21);
    const int reps = std::max(3, opt.runs / 2);
    std::printf("\nGEMM at the models' shapes: %% of cuBLAS SGEMM at the same shape (median of %d batches of launches "
                "queued back to back; w cold: %zu MiB of copies cycled)\n",
                reps, pool_floats * sizeof(float) >> 20);
    std::printf("%-10s %-10s %5s %5s %5s %11s |", "model", "proj", "n", "k", "d", "cuBLAS GF/s");
    for (int v = 1; v <= gemm_versions(); v++) std::printf(" %5s", ("v" + std::to_string(v)).c_str());
    std::printf(" | %-16s %7s %8s %7s %8s\n", "pick", "%cuBLAS", "GB/s", "%copy", "rel.err");
    double min_pct_cublas = 1e30, min_pct_copy = 1e30;
    for (const ModelShape& m : kModelShapes)
        for (int n : kModelRows) {
            const int k = m.k, d = m.d;
            const size_t wf = (size_t)d * k;
            const size_t copies = std::max<size_t>(1, pool_floats / wf);
            auto wcopy = [&](int i) { return pool.p + (size_t)i % copies * wf; };
            const double flop = 2.0 * n * k * d, bytes = 4.0 * ((double)wf + (double)n * k + (double)n * d);
            const double t_cublas = time_batched_ms(reps, [&](int i) { cublas_gemm(h, ref.p, x.p, wcopy(i), n, k, d); });
            std::printf("%-10s %-10s %5d %5d %5d %11.1f |", m.model, m.proj, n, k, d, flop / (t_cublas * 1e-3) / 1e9);
            for (int v = 1; v <= gemm_versions(); v++) {
                if (v == 5 && n > 16) {  // matrix-vector: rows 8 at a time, each pass re-reads w
                    std::printf(" %5s", "-");
                    continue;
                }
                const double t = time_batched_ms(reps, [&](int i) { gemm(v, out.p, x.p, wcopy(i), n, k, d); });
                std::printf(" %5.0f", 100.0 * t_cublas / t);
            }
            const double t_pick = time_batched_ms(reps, [&](int i) { gemm(0, out.p, x.p, wcopy(i), n, k, d); });
            cublas_gemm(h, ref.p, x.p, wcopy(0), n, k, d);
            CUDA_CHECK(cudaMemset(out.p, 0xFF, (size_t)n * d * sizeof(float)));
            gemm(0, out.p, x.p, wcopy(0), n, k, d);
            const double err = rel_l2_device(out.p, ref.p, (size_t)n * d);
            const double pct_cublas = 100.0 * t_cublas / t_pick;
            const double gbs = bytes / (t_pick * 1e-3) / 1e9, pct_copy = 100.0 * gbs / copy_gbs;
            const GemmPlan plan = gemm_plan(0, n, k, d, num_sms());
            std::printf(" | %-16s %7.1f", plan_name(plan).c_str(), pct_cublas);
            if (n <= 16)
                std::printf(" %8.1f %7.1f", gbs, pct_copy);
            else
                std::printf(" %8s %7s", "-", "-");
            std::printf(" %8.1e\n", err);
            std::fflush(stdout);
            if (std::string(m.model) == "TinyLlama") {
                if (n >= 32) min_pct_cublas = std::min(min_pct_cublas, pct_cublas);
                if (n < 32) min_pct_copy = std::min(min_pct_copy, pct_copy);
            }
        }
    extra_pct_headlines.push_back({"gemm_dispatch_min_pct_cublas_n32plus", min_pct_cublas});
    extra_pct_headlines.push_back({"gemm_dispatch_min_pct_copy_n_lt32", min_pct_copy});
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

void bench_attention(const Options& opt, double copy_gbs) {
    if (opt.wants("attention") || opt.wants("prefill")) {
        // causal prompts of the TinyLlama shape (32 query heads in 4 KV groups of 8, head_size
        // 64): compute-bound, 4 head_size flops per visible (query, key) pair, against the FMA rate
        const double fma = fma_peak_gflops(opt);
        const int n_heads = 32, n_kv = 4, hs = 64, batch = 1;
        for (int n : {512, 2048}) {
            const int ctx = n, q_dim = n_heads * hs, kv_dim = n_kv * hs;
            Dev<float> q((size_t)batch * n * q_dim), out(q.n), k((size_t)batch * ctx * kv_dim), v(k.n);
            fill(q, 13);
            fill(k, 14);
            fill(v, 15);
            const double pairs = (double)n * (n + 1) / 2.0;  // visible (query, key) pairs per head
            const double flop = 4.0 * hs * pairs * n_heads * batch;
            const std::string shape = "b1 n" + std::to_string(n) + " h32/4 d64 causal";
            for (int ver = 0; ver <= attention_prefill_versions(); ver++) {
                const double ms = time_ms(opt, [&] {
                    attention_prefill_gpu(ver, out.p, q.p, k.p, v.p, batch, n, 0, ctx, false, n_heads, n_kv, hs);
                });
                const double gflops = flop / (ms * 1e-3) / 1e9;
                print_row("attention prefill", vname(ver, attention_prefill_version_name(ver)), shape, ms, gflops,
                          "GFLOP/s", fma, "ceiling: fp32 FMA rate");
                if (n == 2048) prefill_best_gflops_2048 = std::max(prefill_best_gflops_2048, gflops);
                if (ver == 0 && n == 2048) extra_pct_headlines.push_back({"attention_prefill_pct_fma_2048", 100.0 * gflops / fma});
            }
        }
    }
    const int n_heads = 32, n_kv = 8, hs = 128, q_dim = n_heads * hs, kv_dim = n_kv * hs;
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
            // the kernel the forward's decode step runs: its position from a device counter, its
            // chunks fixed by the context (cuda/decode_attention.cu); its row is the headline
            Dev<int> counter(1);
            CUDA_CHECK(cudaMemcpy(counter.p, &pos, sizeof(int), cudaMemcpyHostToDevice));
            Dev<float> work(attention_decode_counter_workspace_floats(c.batch, c.ctx, n_heads, n_kv, hs));
            const double ms = time_ms(opt, [&] {
                attention_decode_counter_gpu(out.p, q.p, k.p, v.p, counter.p, c.batch, c.ctx, false, n_heads, n_kv, hs,
                                             work.p, work.n);
            });
            print_row("attention decode (forward)", "at the counter", shape, ms, bytes / (ms * 1e-3) / 1e9, "GB/s", copy_gbs);
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
    if (prefill_best_gflops_2048 > 0)  // its rows are against the FMA rate now; this key stays the SGEMM rate's
        print_headline("attention_prefill_best_pct_sgemm", 100.0 * prefill_best_gflops_2048 / cublas_gflops, "%");
    if (!best_per_shape("attention decode (forward)").empty())  // the forward's kernel, its weaker shape
        print_headline("attention_decode_forward_pct_copy", lowest(best_per_shape("attention decode (forward)")), "%");
    for (const auto& kv : extra_pct_headlines) print_headline(kv.first, kv.second, "%");
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
                "  events) against ceilings measured on the same GPU: cuBLAS SGEMM for GEMM (at N^3 and at\n"
                "  every projection shape of TinyLlama and stories15M, with the dispatcher's pick), the fp32\n"
                "  FMA rate for prefill attention, a device-to-device copy for the memory-bound kernels.\n"
                "  Lines 'headline: KEY VALUE UNIT' summarize against DESIGN.md's targets.\n"
                "  FILTER: only kernels whose name contains it (gemm, shapes, softmax, rmsnorm, rope, swiglu,\n"
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
    if (opt.wants("gemm") || opt.wants("shapes")) bench_gemm_shapes(opt, cublas, copy_gbs);
    bench_memory_bound(opt, copy_gbs);
    bench_attention(opt, copy_gbs);
    print_headlines(opt, copy_gbs, cublas_gflops);
    return 0;
}
