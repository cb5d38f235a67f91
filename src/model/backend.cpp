#include "src/model/backend.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <cmath>
#include <cstdint>

PrefillOptions parse_prefill(const std::string& mode) {
    PrefillOptions o;
    if (mode == "parallel") return o;
    if (mode == "sequential") { o.sequential = true; return o; }
    if (starts_with(mode, "iterations:")) {
        o.iterations = parse_int_in(mode.substr(11), "--prefill iterations:N", 1, 1 << 20);
        return o;
    }
    fail("--prefill: unknown mode '" + mode + "' (parallel, sequential, iterations:N)");
}

void check_finite_logits(const float* logits, size_t count, const std::string& where) {
    float zero = 0.0f;  // x * 0 is 0 for every finite x, NaN for the rest: one vectorized pass
#pragma omp simd reduction(+ : zero)
    for (size_t i = 0; i < count; i++) zero += logits[i] * 0.0f;
    if (zero == 0.0f) return;
    for (size_t i = 0; i < count; i++)  // find the first, for the message
        if (!std::isfinite(logits[i]))
            fail("the model's logits are " + std::string(std::isnan(logits[i]) ? "NaN" : "infinite") + " at " + where +
                 " (its weights or activations overflow; a model trained with too high a learning rate?)");
}

PrefillOptions parse_prefill(const std::string& mode, const Model& m) {
    PrefillOptions o = parse_prefill(mode.empty() ? (m.sequential_prefill ? "sequential" : "parallel") : mode);
    if (mode.empty() || mode == "parallel") o.iterations = m.forward_passes + m.backward_passes;
    return o;
}

void check_tokens(const int* tokens, size_t count, int vocab) {
    for (size_t i = 0; i < count; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            fail("token id " + std::to_string(tokens[i]) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
}

void check_prefill(const int* tokens, int batch, int n, int context, int vocab, const PrefillOptions& opt) {
    if (n < 1) fail("the prompt is empty");
    if (n > context)
        fail("the prompt has " + std::to_string(n) + " tokens, more than the context of " + std::to_string(context));
    if (opt.iterations < 1) fail("prefill needs at least 1 iteration per cyclic block");
    check_tokens(tokens, (size_t)batch * n, vocab);
}

bool prefill_token_by_token(const Plan& plan, int n, const PrefillOptions& opt) {
    return opt.sequential || (plan.iterates() && n <= opt.iterations && !opt.always_iterate);
}

Device parse_device(const std::string& s) {
    if (s == "cpu") return Device::CPU;
    if (s == "cuda" || s == "gpu") return Device::CUDA;
    fail("--device: unknown device '" + s + "' (cpu, cuda)");
}

std::unique_ptr<Backend> make_backend(const Model& m, Device d, int batch, int context, CudaDecodeOptions cuda) {
    if (d == Device::CUDA) {
        std::string why;
        if (!cuda_available(&why)) fail("--device cuda: " + why);
    }
    // The callers check their whole run first, with their flags in the message; this is the
    // floor every backend needs (cache, and the run state of a decode step).
    MemoryNeed need;
    add_backend(need, m, d, batch, context, 1, false);
    check_memory(need, "a backend for " + std::to_string(batch) + " sequences", "lower the batch or the context");
    return d == Device::CUDA ? make_cuda_backend(m, batch, context, cuda) : make_cpu_backend(m, batch, context);
}

void Backend::sample(const SamplingSettings& s, const float* draws, int* out) {
    check_sampling(s);
    const int V = vocab_size(), P = logit_positions();
    if (P < 1) fail("sample: no logits yet (prefill first)");
    const float* logits = this->logits();
    std::vector<uint32_t> weights;
    std::vector<int> order;
    for (int b = 0; b < batch(); b++) {
        // NaN or Inf is an error where it appears, not a token sampled from it
        check_finite_logits(logits + ((size_t)b * P + P - 1) * V, V,
                            "position " + std::to_string(pos() - 1) + " of sequence " + std::to_string(b));
        out[b] = sample_token(logits + ((size_t)b * P + P - 1) * V, V, s, s.greedy() ? 0.0f : draws[b], weights, order);
    }
    sampled_.assign(out, out + batch());
}

void Backend::decode_sample(const SamplingSettings& s, const float* draws, int* out) {
    if (sampled_.size() != (size_t)batch()) fail("decode_sample: no tokens sampled yet (call sample after the prefill)");
    const std::vector<int> tokens = sampled_;
    decode(tokens.data());
    sample(s, draws, out);
}
