#include "src/model/model.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

std::vector<std::vector<float>*> Weights::tensors() {
    return {&token_embedding, &rms_att, &wq, &wk, &wv, &wo, &rms_ffn, &w1, &w2, &w3, &rms_final, &wcls};
}

size_t Model::n_params() const {
    size_t n = 0;
    for (auto* t : const_cast<Weights&>(weights).tensors()) n += t->size();
    return n;
}

void allocate_weights(Model& m) {
    const Config& c = m.config;
    const size_t L = c.n_layers, KVL = m.plan.n_kv_layers(), D = c.dim, H = c.hidden_dim;
    Weights& w = m.weights;
    w.token_embedding.assign((size_t)c.vocab_size * D, 0.0f);
    w.rms_att.assign(L * D, 0.0f);
    w.wq.assign(L * c.q_dim() * D, 0.0f);
    w.wk.assign(KVL * c.kv_dim() * D, 0.0f);
    w.wv.assign(KVL * c.kv_dim() * D, 0.0f);
    w.wo.assign(L * D * c.q_dim(), 0.0f);
    w.rms_ffn.assign(L * D, 0.0f);
    w.w1.assign(L * H * D, 0.0f);
    w.w2.assign(L * D * H, 0.0f);
    w.w3.assign(L * H * D, 0.0f);
    w.rms_final.assign(D, 0.0f);
    w.wcls.assign(c.shared_classifier ? 0 : (size_t)c.vocab_size * D, 0.0f);
}

// t[i] = scale * the (first + i)-th normal of the seed's stream (each normal takes two
// next_u32 calls). Chunks of the tensor run on all threads, each generator skipped ahead
// to its chunk's start, so the values are those of one generator filling tensor after
// tensor in one loop, as this function once did: 1.1 billion normals for the TinyLlama
// shape took minutes that way, and the same numbers now take seconds.
static void fill_normal(std::vector<float>& t, float scale, uint64_t seed, size_t first) {
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

Model apply_plan(const Model& m, const Plan& plan) {
    const Config& c = m.config;
    check_plan_applies(m, plan);
    Model out{c, plan, {}};
    out.random_weights = m.random_weights;
    allocate_weights(out);
    Weights& w = out.weights;
    const Weights& from = m.weights;
    for (auto pair : {std::make_pair(&w.token_embedding, &from.token_embedding), std::make_pair(&w.rms_att, &from.rms_att),
                      std::make_pair(&w.wq, &from.wq), std::make_pair(&w.wo, &from.wo), std::make_pair(&w.rms_ffn, &from.rms_ffn),
                      std::make_pair(&w.w1, &from.w1), std::make_pair(&w.w2, &from.w2), std::make_pair(&w.w3, &from.w3),
                      std::make_pair(&w.rms_final, &from.rms_final), std::make_pair(&w.wcls, &from.wcls)})
        *pair.first = *pair.second;
    const size_t per = (size_t)c.kv_dim() * c.dim;
    for (int layer : plan.kv_layers) {
        size_t dst = (size_t)plan.kv_slot[layer] * per, src = (size_t)m.plan.kv_slot[layer] * per;
        std::copy(from.wk.begin() + src, from.wk.begin() + src + per, w.wk.begin() + dst);
        std::copy(from.wv.begin() + src, from.wv.begin() + src + per, w.wv.begin() + dst);
    }
    return out;
}
