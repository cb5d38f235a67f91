#include "src/model/model.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

std::vector<Tensor*> Weights::tensors() {
    return {&token_embedding, &rms_att, &wq, &wk, &wv, &wo, &rms_ffn, &w1, &w2, &w3, &rms_final, &wcls};
}

size_t Model::n_params() const {
    size_t n = 0;
    for (auto* t : const_cast<Weights&>(weights).tensors()) n += t->size();
    return n;
}

std::vector<size_t> weight_sizes(const Config& c, int n_kv_layers) {
    const size_t L = c.n_layers, KVL = n_kv_layers, D = c.dim, H = c.hidden_dim, V = c.vocab_size;
    const size_t QD = c.q_dim(), KD = c.kv_dim();
    return {V * D,                               // token_embedding
            L * D,                               // rms_att
            L * QD * D,                          // wq
            KVL * KD * D,                        // wk
            KVL * KD * D,                        // wv
            L * D * QD,                          // wo
            L * D,                               // rms_ffn
            L * H * D,                           // w1
            L * D * H,                           // w2
            L * H * D,                           // w3
            D,                                   // rms_final
            c.shared_classifier ? 0 : V * D};    // wcls
}

void allocate_weights(Model& m) {
    const Config& c = m.config;
    // checked before anything is taken: a header can describe any shape
    check_memory(MemoryNeed().host("weights (dim " + std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", " +
                                       std::to_string(c.n_layers) + " layers, vocab " + std::to_string(c.vocab_size) + ")",
                                   weight_bytes(c, m.plan.n_kv_layers())),
                 "the model", "");
    const std::vector<size_t> sizes = weight_sizes(m.config, m.plan.n_kv_layers());
    const std::vector<Tensor*> tensors = m.weights.tensors();
    for (size_t i = 0; i < tensors.size(); i++) tensors[i]->assign(sizes[i], 0.0f);
}

// t[i] = scale * the (first + i)-th normal of the seed's stream (each normal takes two
// next_u32 calls). Chunks of the tensor run on all threads, each generator skipped ahead
// to its chunk's start, so the values are those of one generator filling tensor after
// tensor in one loop, as this function once did: 1.1 billion normals for the TinyLlama
// shape took minutes that way, and the same numbers now take seconds.
static void fill_normal(Tensor& t, float scale, uint64_t seed, size_t first) {
    constexpr size_t CHUNK = 1 << 16;
    const long long chunks = (long long)((t.size() + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(dynamic)
    for (long long ci = 0; ci < chunks; ci++) {
        const size_t begin = (size_t)ci * CHUNK, end = std::min(t.size(), begin + CHUNK);
        Rng rng(seed);
        rng.skip(2 * (first + begin));
        for (size_t i = begin; i < end; i++) t[i] = scale * rng.normal();
    }
}

Model init_model(const Config& c, const Plan& plan, uint64_t seed) {
    validate_config(c);
    if (plan.n_layers() != c.n_layers) fail("plan has " + std::to_string(plan.n_layers()) + " layers, model " + std::to_string(c.n_layers));
    Model m{c, plan, {}};
    m.random_weights = true;
    allocate_weights(m);
    Weights& w = m.weights;
    const float std_in = 0.02f, std_out = 0.02f / std::sqrt(2.0f * c.n_layers);
    size_t drawn = 0;  // normals of the stream used by the tensors before
    for (auto* t : {&w.token_embedding, &w.wq, &w.wk, &w.wv, &w.w1, &w.w3, &w.wcls}) {
        fill_normal(*t, std_in, seed, drawn);
        drawn += t->size();
    }
    for (auto* t : {&w.wo, &w.w2}) {
        fill_normal(*t, std_out, seed, drawn);
        drawn += t->size();
    }
    for (auto* t : {&w.rms_att, &w.rms_ffn, &w.rms_final})
        for (float& x : *t) x = 1.0f;
    return m;
}

// ---------------------------------------------------------------------------
// re-planning

void check_plan_applies(const Model& m, const Plan& plan) {
    const Config& c = m.config;
    if (plan.n_layers() != c.n_layers)
        fail("plan '" + plan.name + "' has " + std::to_string(plan.n_layers()) + " layers, but the model has " + std::to_string(c.n_layers));
    for (int layer : plan.kv_layers)
        if (!m.plan.owns_kv(layer))
            fail("plan '" + plan.name + "' needs the K/V weights of layer " + std::to_string(layer) +
                 ", which this checkpoint does not hold (its plan is " + m.plan.spec() + ")");
}

Model apply_plan(Model m, const Plan& plan) {
    check_plan_applies(m, plan);
    const Plan before = m.plan;
    m.plan = plan;  // every other tensor stays as it is (moved in, moved out)
    if (plan.kv_layers == before.kv_layers) return m;
    // W_K, W_V (kv_layer, kv_dim, dim): the new plan's KV layers, in its slot order
    const size_t per = (size_t)m.config.kv_dim() * m.config.dim;
    Tensor wk, wv;
    wk.allocate(plan.n_kv_layers() * per);
    wv.allocate(plan.n_kv_layers() * per);
    for (int layer : plan.kv_layers) {
        const size_t dst = (size_t)plan.kv_slot[layer] * per, src = (size_t)before.kv_slot[layer] * per;
        std::copy(m.weights.wk.begin() + src, m.weights.wk.begin() + src + per, wk.begin() + dst);
        std::copy(m.weights.wv.begin() + src, m.weights.wv.begin() + src + per, wv.begin() + dst);
    }
    m.weights.wk = std::move(wk);
    m.weights.wv = std::move(wv);
    return m;
}
