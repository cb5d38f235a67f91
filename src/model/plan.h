// The sharing plan: which layer's K/V cache each layer's attention reads.
#pragma once
#include <string>
#include <vector>

// A cyclic block [first, last]: some layer in it reads an upper layer's K/V, so
// parallel prefill must iterate over it (DESIGN.md section 2).
struct Block {
    int first, last;
};

// How a layer that reads an upper layer's K/V attends in a one-token step (a decode step, or
// token-by-token prefill), where the upper layer has not run for the new position yet:
//   Paper    source positions 0 .. p-1, as LCKV's paper and the authors' training forward
//            (and every parallel prefill) compute it
//   Authors  a row of zeros, then source positions 0 .. p-2: what the LCKV authors' code
//            computes in that step (reference/ops.h attention_zero_row, walkthrough 9.9)
enum class UpwardRule { Paper, Authors };

// "paper" or "authors" (--upward-rule).
UpwardRule parse_upward_rule(const std::string& name);

struct Plan {
    std::string name;            // as the user gave it, e.g. "lckv:2" or "0,0,2,2"
    std::vector<int> source;     // (n_layers) layer i attends to the K/V of layer source[i]
    bool diag_all = false;       // mask the diagonal in every layer (original LCKV code)
    UpwardRule upward_rule = UpwardRule::Paper;  // a run option (--upward-rule), not part of spec()

    // derived by make_plan()
    std::vector<int> kv_layers;  // layers that own W_K, W_V and a cache slot, ascending
    std::vector<int> kv_slot;    // (n_layers) cache slot of source[i]
    std::vector<Block> blocks;   // cyclic blocks, ascending

    int n_layers() const { return (int)source.size(); }
    int n_kv_layers() const { return (int)kv_layers.size(); }
    bool owns_kv(int layer) const { return source[layer] == layer; }
    // Strict mask (s < p) for upward sources, or everywhere with diag=all; else causal (s <= p).
    bool strict(int layer) const { return diag_all || source[layer] > layer; }
    // Whether layer's one-token steps take the authors' zero row (UpwardRule::Authors).
    bool zero_row_step(int layer) const { return upward_rule == UpwardRule::Authors && source[layer] > layer; }
    bool iterates() const { return !blocks.empty(); }
    std::string map_string() const;  // "0,0,2,2"
    std::string spec() const;        // map_string() plus ",diag=all" when set
};

// Resolves chains (i -> j -> k becomes i -> k), checks the map, derives kv_layers,
// kv_slot and blocks. Throws on a map that does not fit n_layers or has a cycle.
Plan make_plan(std::vector<int> source, bool diag_all, const std::string& name);

// A named plan ("standard", "pizza-middle:4", "cla:2", "yoco", "lckv:2", ...),
// an explicit map ("0,0,2,2"), or a file holding either; ",diag=all" may follow.
Plan parse_plan(const std::string& spec, int n_layers);

// The named plans worth listing for L layers; with kv > 0, those with kv KV layers.
std::vector<std::string> named_plans(int n_layers, int kv);

// The plan file format: '#' comments, then a plan spec.
void write_plan_file(const std::string& path, const Plan& plan, const std::string& comment);
