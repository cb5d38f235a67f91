// The interface both paths implement (reference/ on the CPU, cuda/ on the GPU), so that
// every test, benchmark and subcommand runs the same scenario through either.
#pragma once
#include "src/model/kv_cache.h"
#include "src/model/model.h"
#include "src/text/sampler.h"
#include <memory>
#include <string>
#include <vector>

struct PrefillOptions {
    bool sequential = false;   // token by token, always exact
    int iterations = 9;        // T: parallel iterations per cyclic block (LCKV's m + b = 7 + 2)
    bool all_positions = false;  // keep logits and final hidden states of every prompt position
    bool always_iterate = false; // iterate even when n <= iterations (tests and benchmarks)
};

// "parallel" (default), "sequential" or "iterations:N".
PrefillOptions parse_prefill(const std::string& mode);
// The same for a model: "" is the prefill its checkpoint asks for (an LCKV config's
// forward_passes + backward_passes iterations, or use_sequential), and "parallel" iterates
// that many times.
PrefillOptions parse_prefill(const std::string& mode, const Model& m);

// What the decode steps of a backend have cost the host so far (bench plans reports it per
// step): time spent issuing them, without waiting for the device, and runtime calls made
// (cuda/launch.h: launches, copies, graph launches, synchronizations). Zero on the CPU.
struct DecodeStats {
    long steps = 0;
    double host_seconds = 0;
    size_t runtime_calls = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string device_name() const = 0;

    // Starts `batch` fresh sequences from prompts of n tokens each: tokens (batch, n).
    virtual void prefill(const int* tokens, int n, const PrefillOptions& opt) = 0;
    // Appends one token to every sequence: tokens (batch).
    virtual void decode(const int* tokens) = 0;

    // Of the last call: (batch, positions, vocab) where positions = n for a prefill with
    // all_positions, else 1 (the last position).
    virtual const float* logits() = 0;
    // Final hidden states after the final RMSNorm, same positions: (batch, positions, dim).
    virtual const float* hidden() = 0;
    virtual int logit_positions() const = 0;

    // The cached K (after RoPE) and V that `layer` attends to: (batch, pos(), kv_dim) each.
    virtual void read_kv(int layer, std::vector<float>& k, std::vector<float>& v) = 0;

    virtual int batch() const = 0;
    virtual int vocab_size() const = 0;
    virtual int context() const = 0;
    virtual int pos() const = 0;         // tokens held per sequence
    virtual size_t kv_cache_bytes() const = 0;  // actually allocated

    // Logits only when needed: the next token of every sequence from the last call's logits
    // (its last kept position), as sample_token (src/text/sampler.h) picks it with draws[b], the
    // sequence's uniform draw (unused when greedy); out (batch). This default samples
    // logits() on the host; the GPU samples on the device and reads back one id per sequence.
    virtual void sample(const SamplingSettings& s, const float* draws, int* out);
    // decode() of the tokens the last sample() or decode_sample() returned, then sample():
    // on the GPU one graph launch and one synchronization, the tokens never leave the device.
    virtual void decode_sample(const SamplingSettings& s, const float* draws, int* out);
    virtual DecodeStats decode_stats() const { return DecodeStats{}; }

protected:
    std::vector<int> sampled_;  // what the last sample() returned: the next decode's tokens
};

// Every id in tokens[0..count) lies in [0, vocab), else a clear error.
void check_tokens(const int* tokens, size_t count, int vocab);
// A prefill's arguments (tokens (batch, n)), checked by both backends before they touch
// their state, so a rejected prompt leaves the previous sequence as it was.
void check_prefill(const int* tokens, int batch, int n, int context, int vocab, const PrefillOptions& opt);
// Whether prefill goes token by token: asked for, or a plan that iterates over a prompt no
// longer than its iteration count (where the iterations would cost more and gain nothing).
bool prefill_token_by_token(const Plan& plan, int n, const PrefillOptions& opt);

enum class Device { CPU, CUDA };
Device parse_device(const std::string& s);

// How the GPU backend runs decode steps (cuda/forward.h): CUDA graphs or launch by launch,
// fused or unfused kernels. Every setting gives the same results (graphs bit for bit, fused
// within DESIGN.md's bounds); the tests compare them and bench plans can time each.
struct CudaDecodeOptions {
    bool graphs = true;  // capture a decode step, and a cyclic block's iteration, once; replay after
    bool fused = true;   // cuda/decode_kernels.h's fused kernels, while the batch allows
};

// batch sequences of up to `context` tokens (0: the model's max_seq_len).
std::unique_ptr<Backend> make_backend(const Model& m, Device d, int batch, int context = 0, CudaDecodeOptions cuda = {});
std::unique_ptr<Backend> make_cpu_backend(const Model& m, int batch, int context = 0);
std::unique_ptr<Backend> make_cuda_backend(const Model& m, int batch, int context = 0, CudaDecodeOptions cuda = {});
bool cuda_available(std::string* why);
// Free and total memory of the current GPU; false without one.
bool cuda_memory_info(size_t* free_bytes, size_t* total_bytes);
// The GPU's copy ceiling: a device-to-device cudaMemcpy of `bytes`, timed with events, the
// median of `runs` after `warmup` untimed copies; GB/s counting read + write (2 x bytes), and
// the median time in ms when asked. Shared by bench kernels and bench plans; fails without a GPU.
double cuda_copy_gbs(size_t bytes, int runs, int warmup, double* median_ms = nullptr);
// The GPU's GEMM ceiling for bench plans: the hand-written gemm (version 0, the best for the
// shape) at n = k = d = `size`, timed with events; GFLOP/s of the median of `runs` after
// `warmup` untimed runs. Fails without a GPU.
double cuda_gemm_gflops(int size, int runs, int warmup);
