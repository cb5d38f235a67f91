// Small pieces shared by the SVG charts kvshare writes (bench throughput --svg, sharing-report
// --svg): plain text, no dependencies.
#pragma once
#include <string>

// Text for an SVG element or attribute: & < > " escaped.
std::string xml_escape(const std::string& s);
// A tick step of 1, 2 or 5 times a power of ten, giving about 5 ticks up to `top`.
double nice_step(double top);
