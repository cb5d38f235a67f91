// Helpers shared by the benchmarks: plan lists, models per plan, option parsing, measured
// memory, and the one timing loop every generation benchmark uses.
#include "src/bench/common.h"
#include "src/formats/checkpoint.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__)
// from the ASan runtime (<sanitizer/allocator_interface.h>, not installed everywhere)
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#include <sstream>

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

std::string headline_line(const std::string& key, double value, const std::string& unit) {
    std::string word = key;
    for (char& c : word)
        if (!std::isalnum((unsigned char)c) && c != '.' && c != '_') c = '_';
    // 4 significant digits, but whole numbers from 1000 up (no exponents: 53012 GFLOP/s)
    char number[64];
    std::snprintf(number, sizeof number, std::fabs(value) >= 1000 ? "%.0f" : "%.4g", value);
    return "headline: " + word + " " + number + " " + unit;
}

void print_headline(const std::string& key, double value, const std::string& unit) {
    std::printf("%s\n", headline_line(key, value, unit).c_str());
    std::fflush(stdout);
}

std::string headline_model(const std::string& name) {
    std::string base = name.substr(name.find_last_of('/') + 1);  // npos + 1 = 0
    const size_t dot = base.find_last_of('.');
    return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::vector<int> random_tokens(int count, int vocab, uint64_t seed) {
    if (count < 0 || vocab < 1) fail("random_tokens: " + std::to_string(count) + " tokens of a vocabulary of " + std::to_string(vocab));
    Rng rng(seed);
    std::vector<int> t(count);
    for (int& x : t) x = 3 + (int)(rng.next_u32() % (uint32_t)(vocab - 3 > 0 ? vocab - 3 : vocab));
    if (vocab <= 3) for (int& x : t) x = 0;
    return t;
}

Model PlanModels::make(const Plan& p) const { return preset ? init_model(config, p, seed) : apply_plan(base, p); }

PlanModels plan_models(const Args& a) {
    PlanModels pm;
    if (a.has("--preset") ? !a.positional.empty() : a.positional.size() > 1)
        fail(a.command + ": give one MODEL or --preset NAME, not both (see --help)");
    if (a.has("--preset")) {
        pm.name = a.get("--preset");
        pm.config = preset_config(pm.name);
        pm.preset = true;
        pm.seed = (uint64_t)a.get_int("-s", 1, INT_MIN, INT_MAX);
        // a model per plan at a time; standard's are the most weights
        check_memory(MemoryNeed().host("weights", weight_bytes(pm.config, pm.config.n_layers)), a.command, "a smaller --preset");
    } else {
        pm.name = a.need_model(0, "MODEL (or --preset NAME)");
        pm.base = load_model(pm.name);
        pm.config = pm.base.config;
    }
    return pm;
}

std::vector<Plan> bench_plan_list(const Args& a, const PlanModels& models) {
    const int n_layers = models.config.n_layers;
    std::vector<std::string> specs;
    if (a.has("--plans")) {
        std::istringstream in(a.get("--plans"));
        for (std::string p; in >> p;) specs.push_back(p);
        if (specs.empty()) fail(a.command + ": --plans is empty");
    } else {
        const std::string half = std::to_string(std::max(1, n_layers / 2));
        specs = {"standard", "cla:2", "yoco", "sandwich-middle:" + half, "lckv:2"};
    }
    std::vector<Plan> plans;
    for (const std::string& spec : specs) {
        plans.push_back(parse_plan(spec, n_layers));
        if (!models.preset) check_plan_applies(models.base, plans.back());
    }
    return plans;
}

std::vector<Device> parse_devices(const std::string& s) {
    std::vector<Device> out;
    if (s == "both") out = {Device::CPU, Device::CUDA};
    else out = {parse_device(s)};
    std::string why;
    if (out.back() == Device::CUDA && !cuda_available(&why)) fail("--device " + s + ": " + why);
    return out;
}

const char* device_word(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

std::vector<int> parse_int_list(const std::string& s, const std::string& what, int lo, int hi) {
    std::vector<int> out;
    std::istringstream in(s);
    for (std::string word; in >> word;) out.push_back(parse_int_in(word, what, lo, hi));
    if (out.empty()) fail(what + ": the list is empty (e.g. \"1 2 4 9\")");
    return out;
}

// ---------------------------------------------------------------------------
// memory: measured, never computed from shapes alone

size_t allocated_bytes(Device d) {
    if (d == Device::CUDA) {
        size_t free_bytes = 0, total_bytes = 0;
        if (!cuda_memory_info(&free_bytes, &total_bytes)) fail("kvshare bench throughput: cannot read GPU memory");
        return total_bytes - free_bytes;
    }
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();  // ASan's allocator replaces malloc's: mallinfo2 sees nothing
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;  // in use from the heap + from mmap (large vectors)
#endif
}

size_t available_bytes(Device d) {
    return d == Device::CUDA ? available_gpu_bytes() : available_host_bytes();
}

size_t parse_bytes(const std::string& s, const std::string& what) {
    if (s.empty()) fail(what + ": empty size");
    double scale = 1;
    std::string number = s;
    const char last = (char)std::toupper((unsigned char)s.back());
    if (last == 'K' || last == 'M' || last == 'G' || last == 'T') {
        scale = last == 'K' ? 1024.0 : last == 'M' ? 1048576.0 : last == 'G' ? 1073741824.0 : 1099511627776.0;
        number = s.substr(0, s.size() - 1);
    }
    char* end = nullptr;
    const double v = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !(v > 0) || !std::isfinite(v) || v * scale > 1e18)
        fail(what + ": '" + s + "' is not a size (e.g. 512M, 2G, 300000)");
    return (size_t)(v * scale);
}

// ---------------------------------------------------------------------------
// timed generation

GenerationRun time_generation(Model& m, const GenerationSettings& s, int batch, int steps, int repeats, int warmup) {
    // every generation benchmark comes through here: its whole run is checked first
    MemoryNeed need;
    add_backend(need, m, s.device, batch, s.prompt + s.gen, s.prompt, s.prefill.all_positions);
    need.host("prompt tokens", sat_product({(size_t)batch, (size_t)s.prompt, sizeof(int)}));
    check_memory(need, "the benchmark at batch " + std::to_string(batch), "lower --batch, --prompt or -n");
    const std::vector<int> tokens = random_tokens(batch * s.prompt, m.config.vocab_size, 7);
    const SamplingSettings greedy;  // as generate with -t 0: the backend samples, ids come back
    std::vector<int> next(batch);
    GenerationRun out;
    std::vector<double> prefill_s, decode_s, host_us, calls;
    const size_t before = allocated_bytes(s.device);
    {
        auto be = make_backend(m, s.device, batch, s.prompt + s.gen, s.cuda);
        out.device_name = be->device_name();
        for (int r = 0; r < warmup + repeats; r++) {
            const double t0 = now_seconds();
            be->prefill(tokens.data(), s.prompt, s.prefill);
            be->sample(greedy, nullptr, next.data());  // the first token: results on the host, the GPU has finished
            const double t1 = now_seconds();
            const DecodeStats d0 = be->decode_stats();
            for (int i = 0; i < steps; i++) be->decode_sample(greedy, nullptr, next.data());
            const double t2 = now_seconds();
            const DecodeStats d1 = be->decode_stats();
            if (r < warmup) continue;
            prefill_s.push_back(t1 - t0);
            decode_s.push_back(t2 - t1);
            if (d1.steps > d0.steps) {
                host_us.push_back(1e6 * (d1.host_seconds - d0.host_seconds) / (d1.steps - d0.steps));
                calls.push_back((double)(d1.runtime_calls - d0.runtime_calls) / (d1.steps - d0.steps));
            }
        }
        const size_t after = allocated_bytes(s.device);
        out.memory = after > before ? after - before : 0;
    }
    if (s.device == Device::CPU) out.memory += m.n_params() * sizeof(float);
    out.prefill_s = median(prefill_s);
    out.decode_s = median(decode_s);
    out.host_us_per_step = median(host_us);
    out.calls_per_step = median(calls);
    return out;
}

