// Small pieces shared by the SVG charts kvshare writes (bench throughput --svg, sharing-report
// --svg): plain text, no dependencies.
#pragma once
#include <string>

// Text for an SVG element or attribute: & < > " escaped.
std::string xml_escape(const std::string& s);
// A tick step of 1, 2 or 5 times a power of ten, giving about 5 ticks up to `top`.
double nice_step(double top);
// The plot area's frame, the x axis title under it (18 px above the picture's bottom edge, at
// `height`) and the y axis title turned up along the left edge.
std::string plot_frame(double left, double top, double pw, double ph, double height, const std::string& x_title,
                       const std::string& y_title);
