// kvshare sharing-report: chapter 11's tables and picture from bench/sharing-study.sh's rows.
#include "src/bench/sharing_report.h"
#include "src/bench/svg.h"
#include "src/commands/args.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

const char* const kSharingCsvHeader =
    "section,label,plan,kv_layers,kv_bytes_per_token,perplexity,decode_tok_s,prefill,order,shared,seed,before_perplexity,note";

// ---------------------------------------------------------------------------
// CSV

std::vector<SharingRow> parse_sharing_csv(const std::string& text, const std::string& source) {
    const std::vector<std::string> lines = split(text, '\n');
    if (lines.empty() || lines[0] != kSharingCsvHeader)
        fail(source + ": the first line must be the header \"" + std::string(kSharingCsvHeader) + "\"");
    std::vector<SharingRow> rows;
    for (size_t n = 1; n < lines.size(); n++) {
        if (lines[n].empty()) continue;
        const std::string where = source + " line " + std::to_string(n + 1);
        const std::vector<std::string> f = split(lines[n], ',');
        if (f.size() != 13) fail(where + ": " + std::to_string(f.size()) + " fields, the header has 13");
        auto number = [&](const std::string& s, const char* what, bool positive) {
            const double v = s.empty() ? 0.0 : parse_float(s, where + ": " + what);
            if (v < 0 || (positive && !(v > 0))) fail(where + ": " + what + " must be " + (positive ? "above 0" : "0 or more") + ", got " + s);
            return v;
        };
        SharingRow r;
        r.section = f[0];
        if (r.section != "plan" && r.section != "kvsharer" && r.section != "trained")
            fail(where + ": section must be plan, kvsharer or trained, got '" + printable(f[0]) + "'");
        r.label = f[1];
        r.plan = f[2];
        if (r.label.empty()) fail(where + ": the label is empty");
        r.kv_layers = f[3].empty() ? 0 : parse_int_in(f[3], where + ": kv_layers", 1, 1 << 20);
        r.kv_bytes_per_token = number(f[4], "kv_bytes_per_token", true);
        r.perplexity = number(f[5], "perplexity", true);
        r.decode_tok_s = number(f[6], "decode_tok_s", false);
        r.prefill = f[7];
        r.order = f[8];
        r.shared = f[9].empty() ? 0 : parse_int_in(f[9], where + ": shared", 0, 1 << 20);
        r.seed = f[10].empty() ? 0 : parse_int(f[10], where + ": seed");
        r.before_perplexity = number(f[11], "before_perplexity", false);
        r.note = f[12];
        if (r.section == "kvsharer" && r.order != "dissimilar" && r.order != "similar" && r.order != "random")
            fail(where + ": a kvsharer row's order must be dissimilar, similar or random, got '" + printable(r.order) + "'");
        if (r.section == "trained" && !(r.before_perplexity > 0))
            fail(where + ": a trained row needs before_perplexity, the plan's perplexity before training");
        rows.push_back(r);
    }
    if (rows.empty()) fail(source + ": no rows after the header");
    return rows;
}

static std::string number_text(double v, const char* format) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string sharing_csv_line(const SharingRow& r) {
    std::ostringstream o;
    o << r.section << ',' << r.label << ',' << r.plan << ',' << r.kv_layers << ',' << number_text(r.kv_bytes_per_token, "%.0f") << ','
      << number_text(r.perplexity, "%.6g") << ',' << (r.decode_tok_s > 0 ? number_text(r.decode_tok_s, "%.4g") : "") << ','
      << r.prefill << ',' << r.order << ',' << (r.section == "kvsharer" ? std::to_string(r.shared) : "") << ','
      << (r.order == "random" ? std::to_string(r.seed) : "") << ','
      << (r.before_perplexity > 0 ? number_text(r.before_perplexity, "%.6g") : "") << ',' << r.note;
    return o.str();
}

// ---------------------------------------------------------------------------
// tables

// Perplexity as a reader compares it: 19.6, 95.3, 1025, 226382.
static std::string ppl_text(double p) { return number_text(p, p < 100 ? "%.2f" : p < 1000 ? "%.1f" : "%.0f"); }
static std::string kb_text(double bytes) { return number_text(bytes / 1024, "%.1f KB"); }

// "5→2 13→12": the layers that read another layer's KV, from a layer_types map.
static std::string shared_layers_text(const std::string& plan) {
    std::string out;
    const std::vector<std::string> src = split(plan, '_');
    for (size_t i = 0; i < src.size(); i++)
        if (src[i] != std::to_string(i)) out += (out.empty() ? "" : " ") + std::to_string(i) + "→" + src[i];
    return out.empty() ? "none" : out;
}

static const SharingRow* standard_row(const std::vector<SharingRow>& rows) {
    for (const SharingRow& r : rows)
        if (r.section == "plan" && r.label == "standard") return &r;
    return nullptr;
}

struct Spread {
    double mean = 0, sd = 0, lo = 0, hi = 0;
    int n = 0;
};

static Spread spread_of(const std::vector<double>& v) {
    Spread s;
    s.n = (int)v.size();
    if (v.empty()) return s;
    s.lo = *std::min_element(v.begin(), v.end());
    s.hi = *std::max_element(v.begin(), v.end());
    for (double x : v) s.mean += x / v.size();
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean) / std::max<size_t>(1, v.size() - 1);
    s.sd = std::sqrt(s.sd);
    return s;
}

std::string sharing_markdown(const std::vector<SharingRow>& rows) {
    const SharingRow* standard = standard_row(rows);
    std::ostringstream o;
    o << "| plan | KV layers | KV per token | perplexity | x standard | CPU decode tok/s | prefill |\n"
      << "|---|---|---|---|---|---|---|\n";
    for (const SharingRow& r : rows) {
        if (r.section != "plan") continue;
        o << "| " << r.label << " | " << r.kv_layers << " | " << kb_text(r.kv_bytes_per_token) << " | " << ppl_text(r.perplexity) << " | "
          << (standard ? number_text(r.perplexity / standard->perplexity, "%.2f") : "-") << " | "
          << (r.decode_tok_s > 0 ? number_text(r.decode_tok_s, "%.1f") : "-") << " | " << r.prefill << " |\n";
    }

    // KVSharer: one line per C, the three orders side by side
    std::map<int, std::map<std::string, std::vector<const SharingRow*>>> by_c;
    for (const SharingRow& r : rows)
        if (r.section == "kvsharer") by_c[r.shared][r.order].push_back(&r);
    if (!by_c.empty()) {
        o << "\n| C shared | KV layers | dissimilar: perplexity (layer→source) | similar: perplexity (layer→source) | random: mean ± sd (min-max), seeds |\n"
          << "|---|---|---|---|---|\n";
        for (auto& [c, orders] : by_c) {
            int kv = 0;
            for (auto& [name, list] : orders) kv = list.front()->kv_layers;
            o << "| " << c << " | " << kv;
            for (const char* name : {"dissimilar", "similar"}) {
                o << " | ";
                if (orders.count(name)) {
                    const SharingRow* r = orders[name].front();
                    o << ppl_text(r->perplexity) << " (" << shared_layers_text(r->plan) << ")";
                } else {
                    o << "-";
                }
            }
            o << " | ";
            if (orders.count("random")) {
                std::vector<double> p;
                for (const SharingRow* r : orders["random"]) p.push_back(r->perplexity);
                const Spread s = spread_of(p);
                o << ppl_text(s.mean) << " ± " << ppl_text(s.sd) << " (" << ppl_text(s.lo) << "-" << ppl_text(s.hi) << "), " << s.n;
            } else {
                o << "-";
            }
            o << " |\n";
        }
    }

    bool trained = false;
    for (const SharingRow& r : rows) trained |= r.section == "trained";
    if (trained) {
        o << "\n| plan trained further | KV layers | perplexity before | after | budget |\n|---|---|---|---|---|\n";
        for (const SharingRow& r : rows)
            if (r.section == "trained")
                o << "| " << r.label << " | " << r.kv_layers << " | " << ppl_text(r.before_perplexity) << " | " << ppl_text(r.perplexity)
                  << " | " << r.note << " |\n";
    }
    return o.str();
}

// ---------------------------------------------------------------------------
// the picture

namespace {

// Named plans by family: a colour each; bottom / middle / top as circle / square / triangle.
std::string family_of(const std::string& label) { return label.substr(0, label.find_first_of("-:")); }

const char* family_color(const std::string& family) {
    static const std::map<std::string, const char*> colors = {{"standard", "#000000"}, {"cla", "#1f77b4"}, {"yoco", "#ff7f0e"},
                                                              {"lckv", "#2ca02c"},     {"pizza", "#d62728"}, {"sandwich", "#9467bd"},
                                                              {"lasagna", "#8c564b"}};
    return colors.count(family) ? colors.at(family) : "#7f7f7f";
}

std::string marker(const std::string& label, double x, double y, const char* color, const std::string& title) {
    char buf[512];
    const std::string t = "<title>" + xml_escape(title) + "</title>";
    if (label.find("-middle") != std::string::npos)
        std::snprintf(buf, sizeof buf, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\">", x - 4, y - 4, color);
    else if (label.find("-top") != std::string::npos)
        std::snprintf(buf, sizeof buf, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\">", x, y - 5, x - 5, y + 4, x + 5,
                      y + 4, color);
    else
        std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\">", x, y, color);
    const std::string open = buf;
    const std::string tag = open.substr(1, open.find(' ') - 1);
    return open + t + "</" + tag + ">\n";
}

std::string point_title(const SharingRow& r) {
    return r.label + ": " + std::to_string(r.kv_layers) + " KV layers, " + kb_text(r.kv_bytes_per_token) + " per token, perplexity " +
           ppl_text(r.perplexity) + (r.section == "trained" ? " after training (" + ppl_text(r.before_perplexity) + " before)" : "");
}

}  // namespace

std::string sharing_svg(const std::vector<SharingRow>& rows, const std::string& title) {
    const double W = 860, H = 560, left = 80, right = 210, top = 50, bottom = 60;
    const double pw = W - left - right, ph = H - top - bottom;
    double max_kb = 0, lo = INFINITY, hi = 0;
    for (const SharingRow& r : rows) {
        max_kb = std::max(max_kb, r.kv_bytes_per_token / 1024);
        for (double p : {r.perplexity, r.before_perplexity})
            if (p > 0) lo = std::min(lo, p), hi = std::max(hi, p);
    }
    const double x_step = nice_step(max_kb), x_top = std::ceil(max_kb * 1.02 / x_step) * x_step;
    const double e_lo = std::floor(std::log10(lo)), e_hi = std::max(e_lo + 1, std::ceil(std::log10(hi)));
    auto X = [&](double bytes) { return left + pw * (bytes / 1024) / x_top; };
    auto Y = [&](double p) { return top + ph * (1 - (std::log10(p) - e_lo) / (e_hi - e_lo)); };

    std::ostringstream o;
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
                  "orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n",
                  W, H, W, H);
    o << buf << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(title) << "</text>\n";
    const bool minor = e_hi - e_lo <= 3;  // 2 and 5 between decades while they fit
    for (double e = e_lo; e <= e_hi; e++)
        for (double m : {1.0, 2.0, 5.0}) {
            const double p = m * std::pow(10.0, e);
            if ((m != 1 && !minor) || std::log10(p) > e_hi + 1e-9) continue;
            std::snprintf(buf, sizeof buf,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                          left, Y(p), left + pw, Y(p), m == 1 ? "#ccc" : "#eee", left - 6, Y(p) + 4, p);
            o << buf;
        }
    for (double v = 0; v <= x_top + x_step / 2; v += x_step) {
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                      X(v * 1024), top, X(v * 1024), top + ph, X(v * 1024), top + ph + 18, v);
        o << buf;
    }
    o << plot_frame(left, top, pw, ph, H, "KV cache per token (KB, fp32)", "perplexity (log scale)");

    // KVSharer: a line per order from standard's point through C = 1, 2, ...
    const SharingRow* standard = standard_row(rows);
    struct Line { const char* order; const char* color; const char* dash; };
    const Line lines[] = {{"dissimilar", "#e6550d", ""}, {"similar", "#3182bd", "6,3"}, {"random", "#636363", "2,3"}};
    double legend_y = top + 10;
    auto legend = [&](const std::string& text, const std::string& swatch) {
        o << swatch << "<text x=\"" << left + pw + 40 << "\" y=\"" << legend_y + 4 << "\">" << xml_escape(text) << "</text>\n";
        legend_y += 20;
    };
    for (const Line& line : lines) {
        std::map<int, std::vector<const SharingRow*>> by_c;
        for (const SharingRow& r : rows)
            if (r.section == "kvsharer" && r.order == line.order) by_c[r.shared].push_back(&r);
        if (by_c.empty()) continue;
        std::vector<std::pair<double, double>> pts;
        if (standard) pts.push_back({X(standard->kv_bytes_per_token), Y(standard->perplexity)});
        std::string dots;
        for (auto& [c, list] : by_c) {
            std::vector<double> p;
            for (const SharingRow* r : list) p.push_back(r->perplexity);
            const Spread s = spread_of(p);
            const double x = X(list.front()->kv_bytes_per_token);
            pts.push_back({x, Y(s.mean)});
            std::string t = std::string("KVSharer ") + line.order + ", C=" + std::to_string(c) + ": " +
                            std::to_string(list.front()->kv_layers) + " KV layers, perplexity " + ppl_text(s.mean);
            if (s.n > 1) {
                t += " (mean of " + std::to_string(s.n) + " seeds, " + ppl_text(s.lo) + "-" + ppl_text(s.hi) + ")";
                std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x, Y(s.lo), x,
                              Y(s.hi), line.color);
                dots += buf;
            }
            std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>%s</title></circle>\n", x,
                          Y(s.mean), line.color, xml_escape(t).c_str());
            dots += buf;
        }
        o << "<polyline fill=\"none\" stroke=\"" << line.color << "\" stroke-width=\"1.5\"" << (*line.dash ? " stroke-dasharray=\"" : "")
          << line.dash << (*line.dash ? "\"" : "") << " points=\"";
        for (auto& p : pts) o << number_text(p.first, "%.1f") << "," << number_text(p.second, "%.1f") << " ";
        o << "\"/>\n" << dots;
        std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"%s%s%s/>",
                      left + pw + 12, legend_y, left + pw + 34, legend_y, line.color, *line.dash ? " stroke-dasharray=\"" : "", line.dash,
                      *line.dash ? "\"" : "");
        legend(std::string("KVSharer, ") + line.order, buf);
    }

    // named plans, then the legend of their families
    std::vector<std::string> families;
    for (const SharingRow& r : rows) {
        if (r.section != "plan") continue;
        const std::string f = family_of(r.label);
        if (std::find(families.begin(), families.end(), f) == families.end()) families.push_back(f);
        o << marker(r.label, X(r.kv_bytes_per_token), Y(r.perplexity), family_color(f), point_title(r));
    }
    for (const std::string& f : families) legend(f, marker(f, left + pw + 23, legend_y, family_color(f), f));
    if (std::any_of(rows.begin(), rows.end(), [](const SharingRow& r) { return r.section == "plan" && r.label.find('-') != std::string::npos; })) {
        legend("circle, square, triangle:", "");  // two lines: the legend column is 170 px wide
        legend("bottom, middle, top target", "");
    }

    // trained: an arrow from before to after
    bool any_trained = false;
    for (const SharingRow& r : rows) {
        if (r.section != "trained") continue;
        any_trained = true;
        const double x = X(r.kv_bytes_per_token);
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\">"
                      "<title>%s</title></line>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%s</text>\n",
                      x, Y(r.before_perplexity), x, Y(r.perplexity), xml_escape(point_title(r)).c_str(), x + 5, Y(r.perplexity) + 4,
                      xml_escape(r.label).c_str());
        o << buf;
    }
    if (any_trained) {
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>",
                      left + pw + 12, legend_y, left + pw + 34, legend_y);
        legend("trained further", buf);
    }
    o << "</svg>\n";
    return o.str();
}

// ---------------------------------------------------------------------------
// kvshare sharing-report

int cmd_sharing_report(int argc, char** argv) {
    const Args a = parse_args(argc, argv, 2, "kvshare sharing-report", {"--svg", "--markdown", "--title"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare sharing-report ROWS.csv [--svg FILE] [--markdown FILE] [--title TEXT]\n"
                    "Chapter 11's tables and picture from the rows bench/sharing-study.sh measured (make sharing-study):\n"
                    "perplexity, KV bytes per token and CPU decode tokens/s of each plan applied at load; KVSharer's\n"
                    "plans by shared layers C and pair order (random: mean, sd and range over seeds); plans trained\n"
                    "further, before and after. Markdown tables go to --markdown (or standard output), the SVG\n"
                    "(perplexity, log scale, against KV KB per token) to --svg. The CSV's header is\n%s\n",
                    kSharingCsvHeader);
        return 0;
    }
    const std::string csv = a.need_input_file(0, "ROWS.csv");
    a.at_most_positional(1);
    const std::string svg = a.output_file("--svg"), md = a.output_file("--markdown");
    const std::vector<SharingRow> rows = parse_sharing_csv(read_text_file(csv, "kvshare sharing-report ROWS.csv", (size_t)1 << 26), "'" + csv + "'");
    const std::string tables = sharing_markdown(rows);
    const std::string picture = svg.empty() ? "" : sharing_svg(rows, a.get("--title", "Perplexity against KV cache per token"));
    if (!svg.empty()) write_file_atomic(svg, picture);
    if (!md.empty()) write_file_atomic(md, tables);
    else std::fputs(tables.c_str(), stdout);
    return 0;
}
