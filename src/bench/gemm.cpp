// kvshare bench gemm (src/bench/gemm.h): version 1, version 2 and OpenBLAS at model shapes.
#include "src/bench/gemm.h"
#include "reference/backward.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "src/bench/common.h"
#include "src/commands/args.h"
#include "src/model/config.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <omp.h>
#include <sstream>

// ---------------------------------------------------------------------------
// shapes and options

std::vector<GemmShape> gemm_shapes(const std::string& preset) {
    const Config c = preset_config(preset);
    return {{preset, "q", c.dim, c.q_dim()},      {preset, "kv", c.dim, c.kv_dim()}, {preset, "o", c.q_dim(), c.dim},
            {preset, "up", c.dim, c.hidden_dim}, {preset, "down", c.hidden_dim, c.dim}};
}

const char* gemm_product_name(GemmProduct p) {
    return p == GemmProduct::Forward ? "forward" : p == GemmProduct::BackwardX ? "dx" : "dw";
}

GemmProduct parse_gemm_product(const std::string& s) {
    for (GemmProduct p : {GemmProduct::Forward, GemmProduct::BackwardX, GemmProduct::BackwardW})
        if (s == gemm_product_name(p)) return p;
    fail("kvshare bench gemm --products: unknown product '" + printable(s) + "' (known: forward, dx, dw)");
}

static const char* kGemmUsage =
    "usage: kvshare bench gemm [--models \"M1 M2 ...\"] [--rows \"N1 N2 ...\"] [--threads \"T1 T2 ...\"]\n"
    "                          [--products \"forward dx dw\"] [--repeats R] [--no-naive] [--blas PATH|none]\n"
    "Times the CPU products at each model's projection shapes (q, kv, o, up, down) with N rows of x:\n"
    "version 1 (the naive matmul), version 2 (the blocked one) and OpenBLAS's cblas_sgemm, loaded\n"
    "with dlopen (libopenblas.so.0, or PATH; without it the table says so and goes on), each on T\n"
    "threads, in GFLOP/s (2 n k d flops), medians of R rounds run in turn. forward is out = x @ w^T;\n"
    "dx and dw are its backward products dx += dout @ w and dw += dout^T @ x. Checks every result:\n"
    "version 2's forward equals version 1's to the last bit, OpenBLAS agrees within 1e-4.\n"
    "Defaults: --models \"smollm2-135m stories110M tinyllama\" (any init preset), --rows \"1 16 64 512\"\n"
    "(1..65536), --threads \"1 2\" (1..1024), --products forward, --repeats 5 (1..1000).\n";

GemmBenchOptions parse_gemm_bench(int argc, char** argv) {
    Args a = parse_args(argc, argv, 1, "kvshare bench gemm",
                        {"--models", "--rows", "--threads", "--products", "--repeats", "--blas"}, {"--no-naive"});
    GemmBenchOptions o;
    if ((o.help = a.has("--help"))) return o;
    a.at_most_positional(0);
    if (a.has("--models")) {
        o.models.clear();
        std::istringstream in(a.get("--models"));
        for (std::string m; in >> m;) {
            gemm_shapes(m);  // an unknown preset fails here, before anything runs
            o.models.push_back(m);
        }
        if (o.models.empty()) fail("kvshare bench gemm --models: the list is empty");
    }
    if (a.has("--rows")) o.rows = parse_int_list(a.get("--rows"), "kvshare bench gemm --rows", 1, 65536);
    if (a.has("--threads")) o.threads = parse_int_list(a.get("--threads"), "kvshare bench gemm --threads", 1, 1024);
    if (a.has("--products")) {
        o.products.clear();
        std::istringstream in(a.get("--products"));
        for (std::string p; in >> p;) o.products.push_back(parse_gemm_product(p));
        if (o.products.empty()) fail("kvshare bench gemm --products: the list is empty");
    }
    o.repeats = a.get_int("--repeats", o.repeats, 1, 1000);
    o.naive = !a.has("--no-naive");
    o.blas = a.get("--blas");
    return o;
}

// ---------------------------------------------------------------------------
// OpenBLAS

OpenBlas load_openblas(const std::string& path) {
    OpenBlas b;
    if (path == "none") {
        b.why = "not used (--blas none)";
        return b;
    }
    std::vector<std::string> names = path.empty() ? std::vector<std::string>{"libopenblas.so.0", "libopenblas.so"}
                                                  : std::vector<std::string>{path};
    void* lib = nullptr;
    std::string errors;
    for (const std::string& name : names) {
        if ((lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) {
            b.library = name;
            break;
        }
        const char* e = dlerror();
        errors += (errors.empty() ? "" : "; ") + std::string(e ? e : name + ": cannot load");
    }
    if (!lib) {
        b.why = "not found (" + errors + "): install Debian's libopenblas0, or give --blas PATH";
        return b;
    }
    b.sgemm = reinterpret_cast<decltype(b.sgemm)>(dlsym(lib, "cblas_sgemm"));
    b.set_threads = reinterpret_cast<decltype(b.set_threads)>(dlsym(lib, "openblas_set_num_threads"));
    if (!b.sgemm || !b.set_threads) {
        b.why = b.library + " lacks " + (b.sgemm ? "openblas_set_num_threads" : "cblas_sgemm");
        return b;
    }
    if (auto config = reinterpret_cast<const char* (*)()>(dlsym(lib, "openblas_get_config"))) b.config = config();
    b.ok = true;
    return b;
}

// cblas's constants (cblas.h): row-major storage, no transpose, transpose
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// ---------------------------------------------------------------------------
// timing

namespace {

// The buffers of one (shape, rows): x (n, k), w (d, k), dout (n, d), and an output per
// version: out (n, d) for the forward, dx (n, k) or dw (d, k) for the backward.
struct Operands {
    int n, k, d;
    std::vector<float> x, w, dout;
    std::vector<float> out[3];  // naive, blocked, blas
    Operands(int n_, int k_, int d_, GemmProduct p, uint64_t seed) : n(n_), k(k_), d(d_) {
        Rng rng(seed);
        auto fill = [&](std::vector<float>& v, size_t count) {
            v.resize(count);
            for (float& f : v) f = rng.uniform(-1.0f, 1.0f);
        };
        fill(x, (size_t)n * k);
        fill(w, (size_t)d * k);
        fill(dout, (size_t)n * d);
        const size_t size = p == GemmProduct::Forward ? (size_t)n * d : p == GemmProduct::BackwardX ? (size_t)n * k : (size_t)d * k;
        for (auto& o : out) o.assign(size, 0.0f);
    }
};

// Runs version `which` (0 naive, 1 blocked, 2 OpenBLAS) of the product once. The backward
// products accumulate: their outputs are zeroed before each timed batch, not each run.
void run_product(Operands& b, GemmProduct p, int which, const OpenBlas& blas) {
    float* out = b.out[which].data();
    const int n = b.n, k = b.k, d = b.d;
    switch (p) {
    case GemmProduct::Forward:
        if (which == 0) matmul(out, b.x.data(), b.w.data(), n, k, d);
        else if (which == 1) matmul_blocked(out, b.x.data(), b.w.data(), n, k, d);
        else blas.sgemm(kRowMajor, kNoTrans, kTrans, n, d, k, 1.0f, b.x.data(), k, b.w.data(), k, 0.0f, out, d);
        break;
    case GemmProduct::BackwardX:  // dx (n, k) += dout (n, d) @ w (d, k)
        if (which == 0) matmul_backward_x(out, b.dout.data(), b.w.data(), n, k, d);
        else if (which == 1) matmul_backward_x_blocked(out, b.dout.data(), b.w.data(), n, k, d);
        else blas.sgemm(kRowMajor, kNoTrans, kNoTrans, n, k, d, 1.0f, b.dout.data(), d, b.w.data(), k, 1.0f, out, k);
        break;
    case GemmProduct::BackwardW:  // dw (d, k) += dout (n, d)^T @ x (n, k)
        if (which == 0) matmul_backward_w(out, b.dout.data(), b.x.data(), n, k, d);
        else if (which == 1) matmul_backward_w_blocked(out, b.dout.data(), b.x.data(), n, k, d);
        else blas.sgemm(kRowMajor, kTrans, kNoTrans, d, k, n, 1.0f, b.dout.data(), d, b.x.data(), k, 1.0f, out, k);
        break;
    }
}

// Seconds per product: `count` runs in a row, the output zeroed first.
double time_runs(Operands& b, GemmProduct p, int which, const OpenBlas& blas, int count) {
    std::fill(b.out[which].begin(), b.out[which].end(), 0.0f);
    const double t0 = now_seconds();
    for (int i = 0; i < count; i++) run_product(b, p, which, blas);
    return (now_seconds() - t0) / count;
}

// The checks of run_gemm_bench, on outputs of one run each (zeroed first).
void check_results(Operands& b, GemmProduct p, const OpenBlas& blas, bool naive, const std::string& what) {
    for (int which = 0; which < 3; which++) {
        if ((which == 0 && !naive) || (which == 2 && !blas.ok)) continue;
        std::fill(b.out[which].begin(), b.out[which].end(), 0.0f);
        run_product(b, p, which, blas);
    }
    const std::vector<float>& blocked = b.out[1];
    for (float v : blocked)
        if (!std::isfinite(v)) fail("kvshare bench gemm: version 2 gave a NaN or Inf at " + what);
    if (naive && p == GemmProduct::Forward &&
        std::memcmp(b.out[0].data(), blocked.data(), blocked.size() * sizeof(float)) != 0)
        fail("kvshare bench gemm: versions 1 and 2 of the forward differ at " + what + " (they must agree to the last bit)");
    const std::vector<float>& ref = blas.ok ? b.out[2] : naive ? b.out[0] : blocked;
    double diff = 0, norm = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        diff += ((double)blocked[i] - ref[i]) * ((double)blocked[i] - ref[i]);
        norm += (double)ref[i] * ref[i];
    }
    const double rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    if (rel > 1e-4) fail("kvshare bench gemm: version 2 and the baseline differ at " + what + ": relative L2 " + std::to_string(rel));
}

}  // namespace

std::vector<GemmRow> run_gemm_bench(const GemmBenchOptions& o, const OpenBlas& blas) {
    // the largest buffers of any one case, checked before anything is allocated
    size_t most = 0;
    for (const std::string& m : o.models)
        for (const GemmShape& s : gemm_shapes(m))
            for (int n : o.rows) {
                const size_t x = (size_t)n * s.k, w = (size_t)s.d * s.k, y = (size_t)n * s.d;
                most = std::max(most, (x + w + y + 3 * std::max({y, x, w})) * sizeof(float));
            }
    check_memory(MemoryNeed().host("the operands of the largest product", most), "kvshare bench gemm", "fewer --rows");

    std::vector<GemmRow> rows;
    const int old_threads = omp_get_max_threads();
    uint64_t seed = 1;
    for (int t : o.threads) {
        omp_set_num_threads(t);
        if (blas.ok) blas.set_threads(t);
        for (const std::string& m : o.models)
            for (const GemmShape& s : gemm_shapes(m))
                for (int n : o.rows)
                    for (GemmProduct p : o.products) {
                        const std::string what = m + " " + s.name + " " + gemm_product_name(p) + ", n " + std::to_string(n) +
                                                 ", " + std::to_string(t) + " threads";
                        Operands b(n, s.k, s.d, p, seed++);
                        check_results(b, p, blas, o.naive, what);  // and warms the caches and the threads up
                        const bool run[3] = {o.naive, true, blas.ok};
                        // runs per timing: enough for min_seconds, from the blocked version's time
                        const double once = time_runs(b, p, 1, blas, 1);
                        const int count = (int)std::min(1000.0, std::max(1.0, std::ceil(o.min_seconds / std::max(once, 1e-9))));
                        std::vector<double> seconds[3];
                        for (int r = 0; r < o.repeats; r++)
                            for (int which = 0; which < 3; which++)
                                if (run[which]) seconds[which].push_back(time_runs(b, p, which, blas, count));
                        GemmRow row;
                        row.threads = t;
                        row.shape = s;
                        row.product = p;
                        row.n = n;
                        const double flops = 2.0 * n * s.k * s.d;
                        double* rate[3] = {&row.naive, &row.blocked, &row.blas};
                        for (int which = 0; which < 3; which++)
                            if (run[which]) *rate[which] = flops / median(seconds[which]) / 1e9;
                        rows.push_back(row);
                    }
    }
    omp_set_num_threads(old_threads);
    return rows;
}

// ---------------------------------------------------------------------------
// the table

std::string format_gemm_table(const std::vector<GemmRow>& rows, const OpenBlas& blas) {
    std::string out;
    char line[256];
    auto ratio = [](double a, double b) -> std::string {
        if (a <= 0 || b <= 0) return "-";
        char s[32];
        std::snprintf(s, sizeof s, "%.2fx", a / b);
        return s;
    };
    auto rate = [](double g) -> std::string {
        if (g <= 0) return "-";
        char s[32];
        std::snprintf(s, sizeof s, "%.1f", g);
        return s;
    };
    out += "OpenBLAS: " + (blas.ok ? blas.library + (blas.config.empty() ? "" : " (" + blas.config + ")") : blas.why) + "\n";
    std::snprintf(line, sizeof line, "%-7s %-13s %-4s %-7s %5s %5s %5s %8s %8s %8s %14s %16s\n", "threads", "model", "proj",
                  "product", "n", "k", "d", "naive", "blocked", "openblas", "blocked/naive", "blocked/openblas");
    out += line;
    for (const GemmRow& r : rows) {
        std::snprintf(line, sizeof line, "%-7d %-13s %-4s %-7s %5d %5d %5d %8s %8s %8s %14s %16s\n", r.threads,
                      r.shape.model.c_str(), r.shape.name.c_str(), gemm_product_name(r.product), r.n, r.shape.k, r.shape.d,
                      rate(r.naive).c_str(), rate(r.blocked).c_str(), rate(r.blas).c_str(), ratio(r.blocked, r.naive).c_str(),
                      ratio(r.blocked, r.blas).c_str());
        out += line;
    }
    out += "GFLOP/s, medians; ratios above 1 are version 2 ahead\n";

    // per thread count and product: blocked/openblas at 64 rows or more (DESIGN.md section 7's target)
    std::vector<int> threads;
    for (const GemmRow& r : rows)
        if (std::find(threads.begin(), threads.end(), r.threads) == threads.end()) threads.push_back(r.threads);
    for (int t : threads)
        for (GemmProduct p : {GemmProduct::Forward, GemmProduct::BackwardX, GemmProduct::BackwardW}) {
            std::vector<double> ratios;
            const GemmRow* lowest = nullptr;
            for (const GemmRow& r : rows)
                if (r.threads == t && r.product == p && r.n >= 64 && r.blocked > 0 && r.blas > 0) {
                    ratios.push_back(r.blocked / r.blas);
                    if (!lowest || r.blocked / r.blas < lowest->blocked / lowest->blas) lowest = &r;
                }
            if (ratios.empty()) continue;
            std::snprintf(line, sizeof line,
                          "%d thread%s, %s, n >= 64: blocked/openblas lowest %.2f (%s %s, n %d), median %.2f over %zu shapes\n", t,
                          t == 1 ? "" : "s", gemm_product_name(p), lowest->blocked / lowest->blas, lowest->shape.model.c_str(),
                          lowest->shape.name.c_str(), lowest->n, median(ratios), ratios.size());
            out += line;
            const std::string key = std::string("gemm_cpu_") + gemm_product_name(p) + "_t" + std::to_string(t);
            out += headline_line(key + "_min_pct_openblas_n64plus", 100.0 * lowest->blocked / lowest->blas, "%") + "\n";
            out += headline_line(key + "_median_pct_openblas_n64plus", 100.0 * median(ratios), "%") + "\n";
        }
    return out;
}

int bench_gemm(int argc, char** argv) {
    const GemmBenchOptions o = parse_gemm_bench(argc, argv);
    if (o.help) {
        std::printf("%s", kGemmUsage);
        return 0;
    }
    const OpenBlas blas = load_openblas(o.blas);
    std::printf("bench gemm: x (n, k) @ w (d, k)^T and its backward products, version 1 (naive), version 2 (blocked)%s\n",
                blas.ok ? " and OpenBLAS" : "");
    if (!blas.ok) std::printf("OpenBLAS: %s; timing versions 1 and 2 only\n", blas.why.c_str());
    std::fflush(stdout);
    const std::vector<GemmRow> rows = run_gemm_bench(o, blas);
    std::printf("%s", format_gemm_table(rows, blas).c_str());
    return 0;
}
