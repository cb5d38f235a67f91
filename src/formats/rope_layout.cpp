#include "src/formats/rope_layout.h"
#include <algorithm>
#include <vector>

// One head's rows (head_size, cols) through a scratch copy: to_adjacent moves half-split row
// i to 2i and row i + half to 2i + 1; the other direction undoes it.
static void reorder_heads(float* w, int n_heads, int head_size, size_t cols, bool to_adjacent) {
    const int half = head_size / 2;
    std::vector<float> head((size_t)head_size * cols);
    for (int h = 0; h < n_heads; h++) {
        float* rows = w + (size_t)h * head_size * cols;
        std::copy(rows, rows + head.size(), head.begin());
        for (int i = 0; i < half; i++) {
            const size_t adjacent[2] = {(size_t)2 * i, (size_t)2 * i + 1}, split[2] = {(size_t)i, (size_t)(i + half)};
            for (int k = 0; k < 2; k++) {
                const size_t to = to_adjacent ? adjacent[k] : split[k], from = to_adjacent ? split[k] : adjacent[k];
                std::copy(head.begin() + from * cols, head.begin() + (from + 1) * cols, rows + to * cols);
            }
        }
    }
}

void half_split_to_adjacent(float* w, int n_heads, int head_size, size_t cols) { reorder_heads(w, n_heads, head_size, cols, true); }

void adjacent_to_half_split(float* w, int n_heads, int head_size, size_t cols) { reorder_heads(w, n_heads, head_size, cols, false); }
