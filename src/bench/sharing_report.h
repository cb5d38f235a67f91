// What sharing a pretrained model's KV cache costs (walkthrough chapter 11): the rows that
// bench/sharing-study.sh measures (perplexity, KV bytes per token, decode speed per plan;
// KVSharer's searches; plans trained further), read back from its CSV and written as the
// chapter's tables (Markdown) and its picture (SVG: perplexity against KV memory per token).
#pragma once
#include <string>
#include <vector>

struct SharingRow {
    std::string section;             // "plan" (a named plan at load), "kvsharer" (a search's plan), "trained"
    std::string label;               // the plan's name ("cla:2", "standard"); a search's "dissimilar C=3"
    std::string plan;                // the source map, as layer_types ("0_1_1_3")
    int kv_layers = 0;
    double kv_bytes_per_token = 0;   // K and V of every KV layer, fp32, one sequence
    double perplexity = 0;
    double decode_tok_s = 0;         // CPU decode tokens/s at batch 1; 0: not measured
    std::string prefill;             // how eval prefilled: "one pass", "iterations:9", ...
    std::string order;               // kvsharer: dissimilar, similar or random
    int shared = 0;                  // kvsharer: C, layers reading another layer's KV
    int seed = 0;                    // kvsharer random: the search's seed
    double before_perplexity = 0;    // trained: the same plan's perplexity before training
    std::string note;                // trained: the budget ("1800 s, 120 steps of 8 x 256 tokens")
};

// The CSV's header line; its columns are SharingRow's fields in order. No field holds a comma.
extern const char* const kSharingCsvHeader;

// Rows of a CSV with that header; `source` names it in errors (one per bad line, with its number).
std::vector<SharingRow> parse_sharing_csv(const std::string& text, const std::string& source);
std::string sharing_csv_line(const SharingRow& r);

// The chapter's tables: plans at load, KVSharer by C and order (random: mean, spread and
// range over seeds), and training before and after.
std::string sharing_markdown(const std::vector<SharingRow>& rows);
// Perplexity (log axis) against KV KB per token: one marker per named plan, coloured by
// family; KVSharer's orders as lines (random: the mean over seeds, its range as a bar); a
// trained plan as an arrow from its untrained point. Every point carries a <title> with its
// numbers.
std::string sharing_svg(const std::vector<SharingRow>& rows, const std::string& title);

int cmd_sharing_report(int argc, char** argv);
