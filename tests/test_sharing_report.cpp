// kvshare sharing-report: chapter 11's rows read back, as tables and as an SVG that is
// well-formed and holds every row's numbers where the axes say.
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include "src/bench/sharing_report.h"
#include <cmath>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

const std::string kRows = std::string(kSharingCsvHeader) + "\n" +
                          "plan,standard,0_1_2_3,4,2048,19.6,40.5,one pass,,,,,\n"
                          "plan,cla:2,0_0_2_2,2,1024,226382,41,one pass,,,,,\n"
                          "plan,pizza-top:3,0_1_3_3,3,1536,266,39.9,iterations:9,,,,,\n"
                          "plan,sandwich-middle:3,0_2_2_3,3,1536,95.3,40,iterations:9,,,,,\n"
                          "kvsharer,dissimilar C=1,0_1_2_0,3,1536,21.5,,one pass,dissimilar,1,,,\n"
                          "kvsharer,dissimilar C=2,0_1_0_0,2,1024,30,,one pass,dissimilar,2,,,\n"
                          "kvsharer,similar C=1,0_1_2_2,3,1536,25,,one pass,similar,1,,,\n"
                          "kvsharer,random C=1 seed 1,0_0_2_3,3,1536,20,,one pass,random,1,1,,\n"
                          "kvsharer,random C=1 seed 2,0_1_1_3,3,1536,30,,one pass,random,1,2,,\n"
                          "kvsharer,random C=1 seed 3,0_1_2_1,3,1536,40,,one pass,random,1,3,,\n"
                          "trained,cla:2,0_0_2_2,2,1024,60.25,,one pass,,,,226382,1800 s\n";

// Every tag opened is closed in order (or self-closed), and nothing is left open.
bool well_formed(const std::string& svg) {
    std::vector<std::string> open;
    for (size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
        const size_t end = svg.find('>', at);
        if (end == std::string::npos) return false;
        const std::string tag = svg.substr(at + 1, end - at - 1);
        if (tag.empty()) return false;
        if (tag[0] == '/') {
            if (open.empty() || open.back() != tag.substr(1)) return false;
            open.pop_back();
        } else if (tag.back() != '/') {
            open.push_back(tag.substr(0, tag.find(' ')));
        }
    }
    return open.empty();
}

// The y of the marker whose <title> starts with `label + ":"`.
double marker_y(const std::string& svg, const std::string& label) {
    const size_t t = svg.find("<title>" + label + ":");
    REQUIRE(t != std::string::npos);
    const size_t open = svg.rfind('<', t - 1);
    const std::string element = svg.substr(open, t - open);
    std::smatch m;
    if (std::regex_search(element, m, std::regex("cy=\"([0-9.]+)\""))) return std::stod(m[1]);
    if (std::regex_search(element, m, std::regex(" y=\"([0-9.]+)\""))) return std::stod(m[1]) + 4;  // a square's top
    if (std::regex_search(element, m, std::regex("points=\"[0-9.]+,([0-9.]+)"))) return std::stod(m[1]) + 5;  // a triangle's apex
    FAIL("no y in " << element);
    return 0;
}

}  // namespace

TEST_CASE("sharing-report: the CSV reads back, line by line", "[sharing-report]") {
    const std::vector<SharingRow> rows = parse_sharing_csv(kRows, "rows");
    REQUIRE(rows.size() == 11);
    CHECK(rows[1].label == "cla:2");
    CHECK(rows[1].kv_layers == 2);
    CHECK(rows[1].perplexity == 226382);
    CHECK(rows[0].decode_tok_s == Approx(40.5));
    CHECK(rows[7].order == "random");
    CHECK(rows[7].seed == 1);
    CHECK(rows[10].before_perplexity == 226382);
    CHECK(rows[10].note == "1800 s");
    for (const SharingRow& r : rows) {
        const std::vector<SharingRow> back = parse_sharing_csv(std::string(kSharingCsvHeader) + "\n" + sharing_csv_line(r) + "\n", "line");
        REQUIRE(back.size() == 1);
        CHECK(back[0].label == r.label);
        CHECK(back[0].plan == r.plan);
        CHECK(back[0].perplexity == Approx(r.perplexity).epsilon(1e-6));
        CHECK(back[0].kv_bytes_per_token == r.kv_bytes_per_token);
        CHECK(back[0].shared == r.shared);
        CHECK(back[0].seed == r.seed);
        CHECK(back[0].before_perplexity == Approx(r.before_perplexity).epsilon(1e-6));
    }
}

TEST_CASE("sharing-report: a bad CSV is one error naming its line", "[sharing-report]") {
    const std::string h = std::string(kSharingCsvHeader) + "\n";
    CHECK_THROWS_WITH(parse_sharing_csv("plan,x\n", "f"), Catch::Contains("header"));
    CHECK_THROWS_WITH(parse_sharing_csv(h, "f"), Catch::Contains("no rows"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,a,0,1,2,3\n", "f"), Catch::Contains("line 2") && Catch::Contains("6 fields"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plans,a,0,1,8,3,,,,,,,\n", "f"), Catch::Contains("section"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,a,0,1,8,x,,,,,,,\n", "f"), Catch::Contains("perplexity"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,a,0,1,8,0,,,,,,,\n", "f"), Catch::Contains("above 0"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,a,0,1,-8,3,,,,,,,\n", "f"), Catch::Contains("kv_bytes_per_token"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,,0,1,8,3,,,,,,,\n", "f"), Catch::Contains("label"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "kvsharer,a,0,1,8,3,,,sideways,1,,,\n", "f"), Catch::Contains("order"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "trained,a,0,1,8,3,,,,,,,\n", "f"), Catch::Contains("before_perplexity"));
    CHECK_THROWS_WITH(parse_sharing_csv(h + "plan,a,0,1,8,3,,,,,,,\nplan,b,0,1,8,3,,,,,\n", "f"), Catch::Contains("line 3"));
}

TEST_CASE("sharing-report: the tables hold every row, the random seeds' mean, sd and range", "[sharing-report]") {
    const std::string md = sharing_markdown(parse_sharing_csv(kRows, "rows"));
    CHECK(md.find("| standard | 4 | 2.0 KB | 19.60 | 1.00 | 40.5 | one pass |") != std::string::npos);
    CHECK(md.find("| cla:2 | 2 | 1.0 KB | 226382 | 11550.10 | 41.0 | one pass |") != std::string::npos);
    CHECK(md.find("| pizza-top:3 | 3 | 1.5 KB | 266.0 | 13.57 | 39.9 | iterations:9 |") != std::string::npos);
    // C = 1: dissimilar 21.5 sharing 3 -> 0, similar 25 (3 -> 2), random 20, 30, 40: mean 30, sd 10
    CHECK(md.find("| 1 | 3 | 21.50 (3→0) | 25.00 (3→2) | 30.00 ± 10.00 (20.00-40.00), 3 |") != std::string::npos);
    CHECK(md.find("| 2 | 2 | 30.00 (2→0 3→0) | - | - |") != std::string::npos);
    CHECK(md.find("| cla:2 | 2 | 226382 | 60.25 | 1800 s |") != std::string::npos);
}

TEST_CASE("sharing-report: the SVG is well-formed and puts each row where the axes say", "[sharing-report]") {
    const std::vector<SharingRow> rows = parse_sharing_csv(kRows, "rows");
    const std::string svg = sharing_svg(rows, "a <title> & more");
    CHECK(svg.rfind("<svg ", 0) == 0);
    CHECK(well_formed(svg));
    CHECK(svg.find("a &lt;title&gt; &amp; more") != std::string::npos);
    // every named plan's marker with its numbers
    for (const SharingRow& r : rows)
        if (r.section == "plan") CHECK(svg.find("<title>" + r.label + ": " + std::to_string(r.kv_layers) + " KV layers") != std::string::npos);
    CHECK(svg.find("perplexity 226382") != std::string::npos);
    CHECK(svg.find("perplexity 95.30") != std::string::npos);
    // log axis: a higher perplexity is higher up (smaller y), by the log of the ratio
    const double y_std = marker_y(svg, "standard"), y_cla = marker_y(svg, "cla:2"), y_piz = marker_y(svg, "pizza-top:3"),
                 y_san = marker_y(svg, "sandwich-middle:3");
    CHECK(y_cla < y_piz);
    CHECK(y_piz < y_san);
    CHECK(y_san < y_std);
    CHECK((y_std - y_san) / (y_std - y_cla) == Approx(std::log10(95.3 / 19.6) / std::log10(226382 / 19.6)).epsilon(0.01));
    // one line per KVSharer order, the random one through the seeds' mean, with its range
    CHECK(count_occurrences(svg, "<polyline") == 3);
    CHECK(svg.find("KVSharer random, C=1: 3 KV layers, perplexity 30.00 (mean of 3 seeds, 20.00-40.00)") != std::string::npos);
    // the trained plan as an arrow from before to after
    CHECK(count_occurrences(svg, "marker-end=\"url(#arrow)\"") == 2);  // the arrow and its legend
    CHECK(svg.find("cla:2: 2 KV layers, 1.0 KB per token, perplexity 60.25 after training (226382 before)") != std::string::npos);
}
