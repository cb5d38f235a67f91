#include "src/bench/svg.h"
#include <cmath>
#include <cstdio>

std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '&') out += "&amp;";
        else if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else if (c == '"') out += "&quot;";
        else out += c;
    }
    return out;
}

double nice_step(double top) {
    const double raw = top / 5, p = std::pow(10.0, std::floor(std::log10(raw)));
    return raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
}

std::string plot_frame(double left, double top, double pw, double ph, double height, const std::string& x_title,
                       const std::string& y_title) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n"
                  "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                  left, top, pw, ph, left + pw / 2, height - 18, xml_escape(x_title).c_str(), top + ph / 2,
                  xml_escape(y_title).c_str());
    return buf;
}
