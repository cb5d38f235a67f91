// The GPU forward pass: the same scenario as the CPU reference (reference/forward.h) on
// the hand-written kernels of cuda/kernels.h and cuda/decode_kernels.h. One-pass prefill,
// parallel iterative prefill of cyclic blocks run entirely on the device, token-by-token
// prefill and batched decode, over a device KV cache that holds KV layers only.
//
// All work goes to the backend's own stream. A decode step reads its tokens and its
// position from device memory, so it is captured once into a CUDA graph and replayed for
// every token (one runtime call instead of hundreds); a cyclic block's iteration is
// captured the same way. A change of plan or batch is a new backend, with new graphs.
//
// No CUDA types here: g++ code (tests, make_backend) includes this header. CUstream_st*,
// CUevent_st* and CUgraphExec_st* are cudaStream_t, cudaEvent_t and cudaGraphExec_t.
#pragma once
#include "cuda/launch.h"
#include "src/model/backend.h"
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct CUstream_st;
struct CUevent_st;
struct CUgraphExec_st;

// Bumped whenever a DeviceArray or PinnedArray is allocated anew or swapped: a captured
// graph holds the addresses it was captured with, so it is replayed only while this has
// not changed since (else it is captured again).
size_t buffer_generation();

// A device array that only grows (reserve); freed with its owner. Its contents are lost
// when it grows, so it grows only before a pass starts writing it.
template <typename T>
class DeviceArray {
public:
    DeviceArray() = default;
    ~DeviceArray();
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    // At least n elements; a new allocation is filled with 0xFF bytes (NaN for floats), so
    // that reading what no kernel wrote shows up in the tests.
    void reserve(size_t n);
    // Exactly the host data (n elements), reserving first.
    void upload(const T* host, size_t n);
    void zero();  // every allocated element

    T* get() const { return p_; }
    size_t size() const { return n_; }
    void swap(DeviceArray& o) noexcept;

private:
    T* p_ = nullptr;
    size_t n_ = 0;  // elements allocated
};

// Pinned (page-locked) host memory, for what crosses the bus: copies from and to it are
// asynchronous on a stream (from pageable memory they are not), and a captured graph may
// copy from and to it. Grows like DeviceArray; new memory holds 0xFF bytes.
template <typename T>
class PinnedArray {
public:
    PinnedArray() = default;
    ~PinnedArray();
    PinnedArray(const PinnedArray&) = delete;
    PinnedArray& operator=(const PinnedArray&) = delete;
    void reserve(size_t n);
    T* get() const { return p_; }
    size_t size() const { return n_; }

private:
    T* p_ = nullptr;
    size_t n_ = 0;
};

// An instantiated CUDA graph, destroyed with its owner; `nodes` is the number of launches
// and copies it replays.
class GraphExec {
public:
    GraphExec(CUgraphExec_st* exec, size_t nodes, size_t generation) : exec_(exec), nodes_(nodes), generation_(generation) {}
    ~GraphExec();
    GraphExec(const GraphExec&) = delete;
    GraphExec& operator=(const GraphExec&) = delete;
    CUgraphExec_st* get() const { return exec_; }
    size_t nodes() const { return nodes_; }
    bool current() const { return generation_ == buffer_generation(); }

private:
    CUgraphExec_st* exec_;
    size_t nodes_, generation_;
};

// The weights on the device, shapes as in src/model/model.h. Only KV layers own W_K and W_V.
struct GpuWeights {
    DeviceArray<float> token_embedding;  // (vocab_size, dim)
    DeviceArray<float> rms_att;          // (layer, dim)
    DeviceArray<float> wq;               // (layer, q_dim, dim)
    DeviceArray<float> wk;               // (kv_layer, kv_dim, dim)
    DeviceArray<float> wv;               // (kv_layer, kv_dim, dim)
    DeviceArray<float> wo;               // (layer, dim, q_dim)
    DeviceArray<float> rms_ffn;          // (layer, dim)
    DeviceArray<float> w1;               // (layer, hidden_dim, dim)  gate
    DeviceArray<float> w2;               // (layer, dim, hidden_dim)  down
    DeviceArray<float> w3;               // (layer, hidden_dim, dim)  up
    DeviceArray<float> rms_final;        // (dim)
    DeviceArray<float> wcls;             // (vocab_size, dim); empty when tied
    const float* classifier = nullptr;   // wcls, or token_embedding when tied
};

// Activations of one pass, (rows, width) with rows = batch * new positions per sequence;
// grown, never shrunk.
struct GpuRunState {
    DeviceArray<float> x;            // residual stream (rows, dim)
    DeviceArray<float> xb;           // normed input / branch output (rows, dim)
    DeviceArray<float> q;            // (rows, q_dim)
    DeviceArray<float> k, v;         // (rows, kv_dim) of a KV layer before caching
    DeviceArray<float> att;          // (rows, q_dim)
    DeviceArray<float> hb, hb2;      // (rows, hidden_dim)
    DeviceArray<float> block_input;  // x at a cyclic block's entry, restored every iteration
    DeviceArray<float> decode_work;  // decode attention's partials: attention_decode_counter_workspace_floats
    DeviceArray<int> tokens;         // (rows); a decode step's tokens stay here, and a sample writes the next
    DeviceArray<int> positions;      // (rows)
    DeviceArray<int> counter;        // (1) the position the next decode step appends (cuda/decode_kernels.h)
    DeviceArray<float> draws;        // (batch) uniform draws of a sample
    DeviceArray<uint32_t> weights;   // (batch, vocab) a sample's token weights (src/text/sampling_math.h)
    DeviceArray<float> hidden;       // (batch, logit_positions, dim) after the final norm
    DeviceArray<float> logits;       // (batch, logit_positions, vocab)
    DeviceArray<float> all_hidden;   // token-by-token prefill keeping every position:
    DeviceArray<float> all_logits;   //   (batch, n, width), gathered one column per token
};

class CudaBackend : public Backend {
public:
    CudaBackend(const Model& m, int batch, int context, CudaDecodeOptions options = {});
    ~CudaBackend() override;
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    std::string device_name() const override { return device_name_; }
    void prefill(const int* tokens, int n, const PrefillOptions& opt) override;
    void decode(const int* tokens) override;
    const float* logits() override;  // copied to the host on first use after each call
    const float* hidden() override;
    int logit_positions() const override { return logit_positions_; }
    void read_kv(int layer, std::vector<float>& k, std::vector<float>& v) override;
    int batch() const override { return batch_; }
    int vocab_size() const override { return config_.vocab_size; }
    int context() const override { return kv_.context; }
    int pos() const override { return pos_; }
    size_t kv_cache_bytes() const override { return (key_cache_.size() + value_cache_.size()) * sizeof(float); }
    void sample(const SamplingSettings& s, const float* draws, int* out) override;
    void decode_sample(const SamplingSettings& s, const float* draws, int* out) override;
    DecodeStats decode_stats() const override { return stats_; }

    const CudaDecodeOptions& options() const { return options_; }
    // Whether decode steps use the fused kernels (asked for, and the batch allows).
    bool fused() const;
    // Whether steps and cyclic blocks replay CUDA graphs: asked for, and the debug switch
    // KVSHARE_CUDA_SYNC (cuda/check.h) off.
    bool use_graphs() const;
    // Launches and copies in the last captured decode step (0 before the first capture).
    size_t graph_nodes() const { return last_graph_nodes_; }

    // For tests that compare layer by layer (like CpuBackend::residual()): the residual
    // stream after the last call, (batch * rows, dim), copied from the device.
    std::vector<float> residual() const;
    // Debug, off by default: keep the residual after every layer of the last call (the last
    // iteration's inside a cyclic block), (batch * rows, dim) each. Each layer's output is
    // copied to pinned host memory as the pass goes (in graphs too), so it is slow: for tests.
    void capture_layers(bool on);
    const std::vector<std::vector<float>>& layer_outputs() const;

private:
    // What one decode step does after its layers; a captured graph is kept per kind.
    struct StepKind {
        bool upload = true;   // tokens come from the host (pinned staging), else stay on the device
        bool logits = true;   // final norm and classifier
        int sample = 0;       // 0 none, 1 greedy, 2 temperature / top-p
        float temperature = 0, topp = 1;
        bool operator==(const StepKind& o) const {
            return upload == o.upload && logits == o.logits && sample == o.sample && temperature == o.temperature &&
                   topp == o.topp;
        }
    };
    struct StepGraph {
        StepKind kind;
        std::unique_ptr<GraphExec> exec;
    };
    struct BlockGraph {  // one iteration of cyclic block `block` over n positions
        int block, n;
        std::unique_ptr<GraphExec> exec;
    };

    // Runs layers first..last over n new positions per sequence starting at p0 (prefill).
    void run_layers(int first, int last, int n, int p0);
    void run_layer(int layer, int n, int p0);
    void ffn_block(int layer, int rows);  // RMSNorm, W1|W3, SwiGLU, W2, residual: prefill and unfused decode
    // One layer of a decode step (one new position per sequence, at the counter).
    void decode_layer(int layer);
    void decode_layer_fused(int layer);
    // Writes a KV layer's new K/V rows (batch, n, kv_dim) to its slot at positions p0...
    void store_kv(int slot, int n, int p0);
    // Embeds tokens (batch, n) at positions p0.. into x (through pinned staging).
    void embed(const int* tokens, int n, int p0);
    // Final norm and classifier for the kept rows (all n, or the last of each sequence).
    void finish(int n, bool all_positions);
    // Token ids into the pinned staging buffer h_tokens_ (waiting, if need be, until the
    // last upload from it has left: staging_free_, recorded right after that upload, by
    // staging_queued() or inside the decode step); not until the whole step has run.
    void stage_tokens(const int* tokens, size_t count);
    void staging_queued();
    // Queues one decode step on the stream (launch by launch), or replays its graph.
    void enqueue_step(const StepKind& kind);
    void run_step(const StepKind& kind);
    // The graph of one iteration of cyclic block `block` over n positions, captured when
    // there is none yet (or its buffers moved).
    template <class Iteration>
    const GraphExec& block_graph(int block, int n, Iteration iteration);
    // Queues a sample of the logits rows at logits + b * row_stride into s_.tokens and the
    // pinned h_sampled_.
    void enqueue_sample(const StepKind& kind, const float* logits, size_t row_stride);
    static StepKind sample_kind(const SamplingSettings& s);
    void prepare_sample(const SamplingSettings& s, const float* draws);
    void read_sampled(int* out);
    void after_step(int positions);  // host bookkeeping of a decode step
    void copy_layer_output(int layer, size_t rows);
    const float* to_host(PinnedArray<float>& host, bool& fresh, const float* device, size_t n);
    void grow(size_t rows);
    void wait() const;  // for the stream's work to finish
    float* key_slot(int slot) const { return key_cache_.get() + kv_.offset(slot, 0, 0); }
    float* value_slot(int slot) const { return value_cache_.get() + kv_.offset(slot, 0, 0); }

    Config config_;  // copies: the backend does not keep the Model alive
    Plan plan_;
    int batch_;
    CudaDecodeOptions options_;
    int pos_ = 0;
    int rows_ = 0;  // batch * new positions of the last call
    int logit_positions_ = 0;
    std::string device_name_;

    CUstream_st* stream_ = nullptr;
    CUevent_st* staging_free_ = nullptr;  // recorded after a copy from h_tokens_
    bool staging_pending_ = false;
    DeviceArray<float> split_partials_;  // split K's scratch for this backend's stream (cuda/launch.h)
    DeviceArray<unsigned> split_tickets_;
    SplitKScratch split_;

    GpuWeights w_;
    GpuRunState s_;
    DeviceArray<float> rope_freqs_;  // (head_size / 2), as rope_gpu computes them
    KVLayout kv_;
    DeviceArray<float> key_cache_, value_cache_;  // (kv_slot, batch, context, kv_dim)

    PinnedArray<int> h_tokens_;     // (rows) staging for token uploads
    PinnedArray<float> h_draws_;    // (batch)
    PinnedArray<int> h_sampled_;    // (batch)
    // host copies of the results, made when asked for
    PinnedArray<float> host_logits_, host_hidden_;
    bool host_logits_fresh_ = false, host_hidden_fresh_ = false;

    std::vector<StepGraph> step_graphs_;
    std::vector<BlockGraph> block_graphs_;
    size_t last_graph_nodes_ = 0;
    bool sampled_on_device_ = false;  // s_.tokens holds the last sample: decode_sample may follow
    DecodeStats stats_;

    bool capture_ = false;
    std::vector<std::unique_ptr<PinnedArray<float>>> layer_pinned_;
    mutable std::vector<std::vector<float>> layer_out_;
    mutable bool layer_out_fresh_ = false;
};
