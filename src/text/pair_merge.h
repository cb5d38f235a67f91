// The merge loop both kinds of BPE share: the symbols of a text (or a word) in a doubly linked
// list, and a queue of adjacent pairs that form a token; the best pair is merged, its two
// neighbours' pairs are offered again, until no adjacent pair forms a token. SentencePiece
// ranks a pair by its piece's score (highest first), byte-level BPE by its merge's rank
// (lowest first: priority -rank); on a tie the leftmost pair, as a left-to-right scan would.
#pragma once
#include <queue>
#include <vector>

struct MergeSymbol {
    int token, prev, next;  // -1 for token once merged away; prev / next -1 at the ends
};

// Symbols for these tokens, linked in order.
inline std::vector<MergeSymbol> merge_symbols(const std::vector<int>& tokens) {
    std::vector<MergeSymbol> syms(tokens.size());
    for (size_t i = 0; i < tokens.size(); i++) syms[i] = {tokens[i], (int)i - 1, (int)i + 1};
    if (!syms.empty()) syms.back().next = -1;
    return syms;
}

// Merges the symbols' tokens in place and appends what is left to out. find_pair(left_token,
// right_token, &priority, &merged) says whether the pair forms token `merged`, and how good
// that merge is.
template <class FindPair>
void merge_pairs(std::vector<MergeSymbol>& syms, const FindPair& find_pair, std::vector<int>& out) {
    struct Candidate {
        double priority;
        int left, right;              // symbol indices
        int left_token, right_token;  // their tokens when queued: stale if either changed
        int merged;
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
        return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
    auto offer = [&](int left) {
        const int right = left < 0 ? -1 : syms[left].next;
        if (right < 0) return;
        double priority;
        int merged;
        if (find_pair(syms[left].token, syms[right].token, &priority, &merged))
            queue.push({priority, left, right, syms[left].token, syms[right].token, merged});
    };
    for (int i = 0; i + 1 < (int)syms.size(); i++) offer(i);
    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        MergeSymbol& l = syms[c.left];
        MergeSymbol& r = syms[c.right];
        if (l.next != c.right || l.token != c.left_token || r.token != c.right_token) continue;  // stale
        l.token = c.merged;
        l.next = r.next;
        if (r.next >= 0) syms[r.next].prev = c.left;
        r.token = -1;
        offer(l.prev);
        offer(c.left);
    }
    for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) out.push_back(syms[i].token);  // symbol 0 is never merged away
}
