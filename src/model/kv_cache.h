// The KV cache: one slot per KV layer only; layers that share read their source's slot.
#pragma once
#include <cstddef>

// Layout of both K and V: (kv_slot, batch, context, n_kv_heads * head_size), fp32.
struct KVLayout {
    int n_slots = 0;   // = plan.n_kv_layers()
    int batch = 0;
    int context = 0;   // positions allocated per sequence
    int kv_dim = 0;    // n_kv_heads * head_size

    size_t offset(int slot, int b, int t) const {
        return (((size_t)slot * batch + b) * context + t) * kv_dim;
    }
    size_t floats() const { return (size_t)n_slots * batch * context * kv_dim; }
    // K and V together: |KV layers| x 2 x kv_dim x 4 bytes x context x batch
    size_t bytes() const { return 2 * floats() * sizeof(float); }
};
