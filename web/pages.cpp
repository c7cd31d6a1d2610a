// The HTML of each page, drawn from its JSON document: tables, and charts as SVG. Every string
// from the library goes through esc(): kernel sources, logs and LLM replies are untrusted.
#include "web/pages.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "web/web.hpp"

namespace kforge::web {
namespace {

using nlohmann::json;

std::string esc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  return out;
}

std::string str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}
std::string text(const json& v) { return esc(str(v)); }
std::string text_or_dash(const json& v) { return str(v).empty() ? "-" : text(v); }

double real(const json& v) { return v.is_number() ? v.get<double>() : 0.0; }

// A positive number with `decimals`, else "-".
std::string num(const json& v, int decimals = 2, const char* suffix = "") {
  return v.is_number() && v.get<double>() > 0 ? fmt::format("{:.{}f}{}", v.get<double>(), decimals, suffix) : "-";
}

std::string short_key(const json& key) { return esc(str(key).substr(0, 12)); }

// A link to the page `name`; where a report did not write that page, the label as text.
std::string link(const View& v, const std::string& name, const std::string& label) {
  if (!v.links(name)) return fmt::format("<span class=\"absent\" title=\"not in this report\">{}</span>", label);
  return fmt::format("<a href=\"{}.html\">{}</a>", name, label);
}
// An SVG mark inside a link to the page `name`, where there is that page.
std::string svg_link(const View& v, const std::string& name, const std::string& mark) {
  return v.links(name) ? fmt::format("<a href=\"{}.html\">{}</a>", name, mark) : mark;
}

std::string kernel_link(const View& v, const json& key, const std::string& label = "") {
  if (str(key).empty()) return "-";
  return link(v, "kernel-" + encode_name(str(key)), label.empty() ? short_key(key) : label);
}
std::string run_link(const View& v, const json& id) { return link(v, "run-" + encode_name(str(id)), text(id)); }
std::string task_link(const View& v, const json& run_id, const json& task) {
  return link(v, "task-" + encode_name(str(run_id)) + "-" + encode_name(str(task)), text(task));
}
std::string device_link(const View& v, const json& key) { return link(v, "device-" + encode_name(str(key)), text(key)); }
std::string status_span(const json& status) {
  return fmt::format("<span class=\"st s-{}\">{}</span>", text(status), text(status));
}

const char* const kStatuses[] = {"ok", "incorrect", "compile_error", "crash", "timeout", "runtime_error", "rejected_cheat"};

// 5000 -> "5,000"
std::string thousands(std::size_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Where a long table is: "evaluations 201–400 of 5,000 (all in JSON) · first · previous · page 2 of
// 25 · next · last"; nothing when it fits one page.
std::string pager(const View& v, std::size_t total, const char* what) {
  if (v.pages <= 1) return "";
  auto to = [&](int p, const char* label) {
    if (p < 1 || p > v.pages || p == v.page) return fmt::format("<span class=\"off\">{}</span>", label);
    return fmt::format("<a class=\"page\" href=\"{}.html\">{}</a>", p == 1 ? v.name : fmt::format("{}-p{}", v.name, p), label);
  };
  const auto [first, last] = v.range(total);
  return fmt::format(
      "<p class=\"pager\">showing {} {}–{} of {} (all of them in <a href=\"api/{}.json\">JSON</a>) · {} · {} · "
      "page {} of {} · {} · {}</p>",
      what, thousands(first + 1), thousands(last), thousands(total), v.name, to(1, "first"), to(v.page - 1, "previous"),
      v.page, v.pages, to(v.page + 1, "next"), to(v.pages, "last"));
}

std::string legend() {
  std::string out = "<p class=\"legend\">";
  for (const char* s : kStatuses) out += fmt::format("<span class=\"dot s-{0}\"></span>{0} ", s);
  return out + "</p>";
}

// ---- charts ------------------------------------------------------------------------------------

// Every evaluation as a point (x: its number in the task, y: its speedup; failures on the axis),
// coloured by status, under the best-so-far line.
std::string curve_svg(const View& v, const json& evaluations, const json& best_so_far) {
  const int n = static_cast<int>(evaluations.size());
  const double w = 960, h = 320, left = 56, right = 16, top = 16, bottom = 40;
  double ymax = 0;
  for (const auto& e : evaluations) ymax = std::max(ymax, real(e["speedup"]));
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  auto x = [&](int i) { return left + (i + 0.5) / n * (w - left - right); };
  auto y = [&](double v) { return top + (1 - v / ymax) * (h - top - bottom); };
  std::string out = fmt::format("<svg class=\"curve\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">", w, h, w, h);
  out += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\"/>", left, y(0), w - right);
  out += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>", left, top, y(0));
  for (int t = 0; t <= 4; ++t) {
    const double v = ymax / 1.1 * t / 4;
    out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}x</text>", left - 4, y(v) + 4, v);
  }
  out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">1</text>", x(0), h - 24);
  out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x(n - 1), h - 24, n);
  out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">evaluation</text>", (left + w) / 2, h - 6);
  std::string line;
  for (int i = 0; i < n; ++i) line += fmt::format("{:.1f},{:.1f} ", x(i), y(real(best_so_far[i])));
  out += fmt::format("<polyline class=\"best\" points=\"{}\"/>", line);
  for (int i = 0; i < n; ++i) {
    const json& e = evaluations[i];
    out += svg_link(v, "kernel-" + encode_name(str(e["kernel_key"])),
                    fmt::format("<circle class=\"eval s-{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\">"
                                "<title>#{} {} {} {} {}</title></circle>",
                                text(e["status"]), x(i), y(real(e["speedup"])), i + 1, text(e["origin"]),
                                text(e["operator"]), text(e["status"]), num(e["speedup"], 3, "x")));
  }
  return out + "</svg>";
}

// The lineage tree: a kernel under its parent (when the parent was evaluated in the same run and
// task), leaves side by side in the order they were made, each edge labelled near its child with
// its operator's initials ("pm": param_mutation; a legend above says which), so that a parent's
// many children keep their labels apart.
std::string tree_svg(const View& v, const json& kernels) {
  std::map<std::string, int> index;
  for (std::size_t i = 0; i < kernels.size(); ++i) index[str(kernels[i]["kernel_key"])] = static_cast<int>(i);
  std::vector<std::vector<int>> children(kernels.size());
  std::vector<int> roots;
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    auto it = index.find(str(kernels[i]["parent_key"]));
    if (it == index.end() || it->second == static_cast<int>(i)) roots.push_back(static_cast<int>(i));
    else children[it->second].push_back(static_cast<int>(i));
  }
  std::vector<double> slot(kernels.size());
  std::vector<int> depth(kernels.size());
  int leaves = 0, max_depth = 0;
  std::function<void(int, int)> place = [&](int k, int d) {
    depth[k] = d, max_depth = std::max(max_depth, d);
    if (children[k].empty()) {
      slot[k] = leaves++;
      return;
    }
    for (int c : children[k]) place(c, d + 1);
    slot[k] = (slot[children[k].front()] + slot[children[k].back()]) / 2;
  };
  for (int r : roots) place(r, 0);
  // Wide trees (thousands of kernels) get narrower columns and no edge labels (titles keep them).
  const bool labels = leaves <= 200;
  const double dx = labels ? 40 : 12, dy = 64, margin = 24;
  auto x = [&](int k) { return margin + slot[k] * dx; };
  auto y = [&](int k) { return margin + depth[k] * dy; };
  const double w = 2 * margin + std::max(0, leaves - 1) * dx, h = 2 * margin + max_depth * dy;
  std::map<std::string, std::string> initials;  // operator -> its label, distinct per operator
  auto label = [&](const std::string& op) {
    if (auto it = initials.find(op); it != initials.end()) return it->second;
    std::string a;
    for (std::size_t i = 0; i < op.size(); ++i)
      if (i == 0 || op[i - 1] == '_') a += op[i];
    for (int n = 2; std::any_of(initials.begin(), initials.end(), [&](const auto& e) { return e.second == a; }); ++n)
      a = a.substr(0, a.find_first_of("0123456789")) + std::to_string(n);
    return initials[op] = a;
  };
  std::string out = fmt::format("<svg class=\"tree\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">", w, h, w, h);
  for (std::size_t k = 0; k < kernels.size(); ++k)
    for (int c : children[k]) {
      out += fmt::format("<line class=\"edge\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", x(k), y(k),
                         x(c), y(c));
      if (labels)
        out += fmt::format("<text class=\"op\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>", x(k) + 0.7 * (x(c) - x(k)) + 4,
                           y(k) + 0.7 * (y(c) - y(k)), esc(label(str(kernels[c]["operator"]))));
    }
  std::string legend;
  for (const auto& [op, a] : initials) legend += fmt::format("{}<b>{}</b> {}", legend.empty() ? "" : " · ", esc(a), esc(op));
  if (!legend.empty()) out = "<p class=\"ops\">edges: " + legend + "</p>" + out;
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    const json& n = kernels[k];
    out += svg_link(v, "kernel-" + encode_name(str(n["kernel_key"])),
                    fmt::format("<g class=\"node\"><circle class=\"s-{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"6\"/>"
                                "<title>{} {} {} {}</title></g>",
                                text(n["status"]), x(k), y(k), text(n["origin"]), text(n["operator"]), text(n["status"]),
                                num(n["best_speedup"], 3, "x")));
  }
  return out + "</svg>";
}

// An island's MAP-Elites grid: code family across, the first param's bin down; each elite's
// speedup, shaded by it.
std::string grid_html(const View& v, const json& island, int bins, double best) {
  std::map<std::pair<int, int>, std::vector<json>> cells;
  for (const auto& c : island["cells"]) {
    const int f = c["family_bin"].get<int>(), p = c["param_bin"].get<int>();
    bins = std::max({bins, f + 1, p + 1});
    cells[{f, p}].push_back(c);
  }
  std::string out = fmt::format("<table class=\"grid\"><caption>island {}: {} members, {} elites</caption><tr><th></th>",
                                island["island"].get<int>(), island["members"].get<std::size_t>(), island["cells"].size());
  for (int f = 0; f < bins; ++f) out += fmt::format("<th>f{}</th>", f);
  out += "</tr>";
  for (int p = 0; p < bins; ++p) {
    out += fmt::format("<tr><th>p{}</th>", p);
    for (int f = 0; f < bins; ++f) {
      auto it = cells.find({f, p});
      if (it == cells.end()) {
        out += "<td></td>";
        continue;
      }
      const double fit = real(it->second.front()["fitness"]);
      out += fmt::format("<td class=\"elite\" style=\"background:hsl(130,50%,{:.0f}%)\">",
                         92 - 40 * (best > 0 ? std::min(1.0, fit / best) : 0));
      for (const auto& c : it->second)
        out += kernel_link(v, c["kernel_key"], fmt::format("{:.2f}", real(c["fitness"]))) +
               (c["register_bin"].get<int>() >= 0 ? fmt::format("<sub>r{}</sub> ", c["register_bin"].get<int>()) : " ");
      out += "</td>";
    }
    out += "</tr>";
  }
  return out + "</table>";
}

// Log-log roofline: each published kernel at its arithmetic intensity (GFLOP/s / GB/s) and
// GFLOP/s, under the roof min(peak, bandwidth x intensity) where the device's are measured.
std::string roofline_svg(const View& v, const json& device, int& placed) {
  const double bw = real(device["bandwidth_gbps"]), peak = real(device["peak_gflops"]);
  std::vector<std::pair<double, double>> points;  // intensity, gflops
  std::vector<const json*> rows;
  for (const auto& k : device["kernels"])
    if (real(k["gbps"]) > 0 && real(k["gflops"]) > 0)
      points.push_back({real(k["gflops"]) / real(k["gbps"]), real(k["gflops"])}), rows.push_back(&k);
  placed = static_cast<int>(points.size());
  double xlo = 1e300, xhi = 0, ylo = 1e300, yhi = 0;
  auto cover = [&](double xv, double yv) {
    xlo = std::min(xlo, xv), xhi = std::max(xhi, xv), ylo = std::min(ylo, yv), yhi = std::max(yhi, yv);
  };
  for (auto [xi, yi] : points) cover(xi, yi);
  if (bw > 0 && peak > 0) cover(peak / bw, peak);
  else if (peak > 0) cover(xlo < 1e300 ? xlo : 1, peak);
  if (xhi == 0) cover(0.1, 1), cover(10, 100);
  xlo = std::pow(10, std::floor(std::log10(xlo))), xhi = std::pow(10, std::ceil(std::log10(xhi) + 1e-9));
  ylo = std::pow(10, std::floor(std::log10(ylo))), yhi = std::pow(10, std::ceil(std::log10(yhi) + 1e-9));
  const double w = 720, h = 440, left = 64, right = 16, top = 16, bottom = 44;
  auto x = [&](double v) { return left + std::log10(v / xlo) / std::log10(xhi / xlo) * (w - left - right); };
  auto y = [&](double v) { return top + (1 - std::log10(v / ylo) / std::log10(yhi / ylo)) * (h - top - bottom); };
  std::string out = fmt::format("<svg class=\"roofline\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">", w, h, w, h);
  for (double v = xlo; v <= xhi * 1.001; v *= 10)
    out += fmt::format("<line class=\"gridline\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\"/>"
                       "<text class=\"tick\" x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4:g}</text>",
                       x(v), top, h - bottom, h - bottom + 14, v);
  for (double v = ylo; v <= yhi * 1.001; v *= 10)
    out += fmt::format("<line class=\"gridline\" x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\"/>"
                       "<text class=\"tick\" x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:g}</text>",
                       y(v), left, w - right, left - 4, y(v) + 4, v);
  out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">FLOP/byte</text>", (left + w) / 2, h - 6);
  out += fmt::format("<text class=\"tick\" x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">GFLOP/s</text>",
                     (top + h - bottom) / 2, (top + h - bottom) / 2);
  if (bw > 0) {
    const double ridge = peak > 0 ? peak / bw : xhi;
    const double x0 = std::max(xlo, ylo / bw);
    out += fmt::format("<polyline class=\"roof\" points=\"{:.1f},{:.1f} {:.1f},{:.1f}{}\"/>", x(x0), y(bw * x0),
                       x(std::min(ridge, xhi)), y(bw * std::min(ridge, xhi)),
                       peak > 0 ? fmt::format(" {:.1f},{:.1f}", x(xhi), y(peak)) : "");
  } else if (peak > 0) {
    out += fmt::format("<line class=\"roof\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", x(xlo), y(peak),
                       x(xhi), y(peak));
  }
  for (std::size_t i = 0; i < points.size(); ++i) {
    const json& k = *rows[i];
    out += svg_link(v, "kernel-" + encode_name(str(k["kernel_key"])),
                    fmt::format("<circle class=\"roof-point\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\">"
                                "<title>{} {}: {:.1f} GB/s, {:.1f} GFLOP/s</title></circle>",
                                x(points[i].first), y(points[i].second), text(k["op"]), text(k["shape"]),
                                real(k["gbps"]), real(k["gflops"])));
  }
  return out + "</svg>";
}

// ---- the diff ----------------------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A line diff (longest common subsequence), as unified-style lines: ' ' kept, '-' parent, '+' child.
std::string diff_html(const std::string& parent, const std::string& child) {
  const auto a = lines_of(parent), b = lines_of(child);
  std::size_t pre = 0, suf = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  const std::size_t n = a.size() - pre - suf, m = b.size() - pre - suf;
  if (n * m > 4'000'000) return "<p>(too large to diff)</p>";
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] = a[pre + i] == b[pre + j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::string out = "<pre class=\"diff\">";
  auto emit = [&](const char* cls, char mark, const std::string& line) {
    out += fmt::format("<span class=\"{}\">{} {}</span>\n", cls, mark, esc(line));
  };
  const std::size_t context = 3;
  for (std::size_t i = pre > context ? pre - context : 0; i < pre; ++i) emit("ctx", ' ', a[i]);
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[pre + i] == b[pre + j]) emit("ctx", ' ', a[pre + i]), ++i, ++j;
    else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) emit("del", '-', a[pre + i++]);
    else emit("add", '+', b[pre + j++]);
  }
  for (std::size_t k = 0; k < std::min(suf, context); ++k) emit("ctx", ' ', a[a.size() - suf + k]);
  return out + "</pre>";
}

std::string pre(const json& v, const char* cls = "log") {
  return str(v).empty() ? "" : fmt::format("<pre class=\"{}\">{}</pre>", cls, text(v));
}

}  // namespace

// ---- the pages ---------------------------------------------------------------------------------

std::string layout(const std::string& title, const std::string& body, const View& v, bool refresh) {
  return fmt::format(R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{0} · kforge</title>{3}
{4}<link rel="stylesheet" href="static/kforge.css">
<script src="static/kforge.js"></script></head>
<body><nav><a href="index.html">runs</a> · <a href="library.html">library</a> · <a href="api/{2}.json">JSON</a></nav>
<h1>{0}</h1>
{1}
{5}</body></html>
)",
                     esc(title), body, v.name, refresh ? "<meta http-equiv=\"refresh\" content=\"5\">" : "",
                     v.highlight ? "<link rel=\"stylesheet\" href=\"static/highlight.css\">" : "",
                     v.highlight ? "<script src=\"static/highlight.min.js\"></script>" : "");
}

std::string index_html(const json& j, const View& v) {
  std::string out = pager(v, j["runs"].size(), "runs") +
      "<table><tr><th>run</th><th>status</th><th>started</th><th>wall</th><th>evaluations</th><th>correct</th>"
      "<th>failed</th><th>LLM calls</th><th>cost</th><th>best speedup per task</th></tr>";
  const auto [first, last] = v.range(j["runs"].size());
  for (std::size_t i = first; i < last; ++i) {
    const json& r = j["runs"][i];
    std::string tasks;
    for (const auto& t : r["tasks"])
      tasks += fmt::format("{} {}<br>", task_link(v, r["run_id"], t["task"]), num(t["best_speedup"], 2, "x"));
    out += fmt::format(
        "<tr><td>{}</td><td class=\"run-{}\">{}</td><td>{}</td><td>{} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>${:.4f}</td><td>{}</td></tr>",
        run_link(v, r["run_id"]), text(r["status"]), text(r["status"]), text(r["started_at"]), num(r["wall_s"], 1),
        str(r["evaluations"]), str(r["correct"]), str(r["failed"]), str(r["llm_calls"]), real(r["llm_cost_usd"]), tasks);
  }
  out += "</table>" + pager(v, j["runs"].size(), "runs") + "<h2>Devices</h2><ul>";
  for (const auto& d : j["devices"]) out += fmt::format("<li>{}</li>", device_link(v, d["device_key"]));
  return out + "</ul>";
}

std::string run_html(const json& r, const View& v) {
  std::string out = fmt::format(
      "<dl><dt>status</dt><dd>{}</dd><dt>command</dt><dd><code>{}</code></dd><dt>host</dt><dd>{}</dd>"
      "<dt>started</dt><dd>{}</dd><dt>ended</dt><dd>{}</dd><dt>wall time</dt><dd>{} s</dd>"
      "<dt>evaluations</dt><dd>{} ({} correct, {} failed)</dd><dt>LLM</dt><dd>{} calls, ${:.4f}</dd></dl>",
      text(r["status"]), text(r["command"]), text(r["host"]), text(r["started_at"]), text(r["ended_at"]),
      num(r["wall_s"], 1), str(r["evaluations"]), str(r["correct"]), str(r["failed"]), str(r["llm_calls"]),
      real(r["llm_cost_usd"]));
  std::map<std::string, std::string> by_status;
  for (const auto& s : r["by_status"])
    by_status[str(s["task"])] += fmt::format("{} {} ", status_span(s["status"]), str(s["n"]));
  out += "<h2>Tasks</h2><table><tr><th>task</th><th>evaluations</th><th>kernels</th><th>correct</th><th>failed</th>"
         "<th>best speedup</th><th>by status</th></tr>";
  for (const auto& t : r["tasks"])
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                       task_link(v, r["run_id"], t["task"]), str(t["evaluations"]), str(t["kernels"]), str(t["correct"]),
                       str(t["failed"]), num(t["best_speedup"], 3, "x"), by_status[str(t["task"])]);
  out += "</table>";
  if (!r["llm"].empty()) {
    out += "<h2>LLM calls</h2><table><tr><th>model</th><th>status</th><th>calls</th><th>prompt tokens</th>"
           "<th>completion tokens</th><th>cost</th><th>mean latency</th></tr>";
    for (const auto& c : r["llm"])
      out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>${:.4f}</td><td>{} ms</td></tr>",
                         text(c["model"]), text(c["status"]), str(c["calls"]), str(c["prompt_tokens"]),
                         str(c["completion_tokens"]), real(c["cost_usd"]), num(c["mean_latency_ms"], 0));
    out += "</table>";
  }
  return out;
}

// The curve, tree and grids (first page only: they show every evaluation), then a page of the
// evaluations table.
std::string task_html(const json& t, const View& v) {
  const double best = t["best_so_far"].empty() ? 0 : real(t["best_so_far"].back());
  const json& evaluations = t["evaluations"];
  std::string out = fmt::format("<p>run {} · {} evaluations of {} kernels · best {} (re-verified)</p>",
                                run_link(v, t["run_id"]), thousands(evaluations.size()), thousands(t["kernels"].size()),
                                num(json(best), 3, "x"));
  if (v.page == 1) {
    out += "<h2>Speedup by evaluation</h2><p>Each evaluation's speedup (a failure on the axis); the line: the best "
           "re-verified so far.</p>" + legend() + "<div class=\"scroll\">" +
           curve_svg(v, evaluations, t["best_so_far"]) + "</div>";
    out += "<h2>Lineage</h2><div class=\"scroll\">" + tree_svg(v, t["kernels"]) + "</div>";
    out += "<h2>MAP-Elites grids</h2>";
    if (t["islands"].empty()) out += "<p>No saved search state for this task.</p>";
    out += "<div class=\"grids\">";
    for (const auto& island : t["islands"]) out += grid_html(v, island, t["bins"].get<int>(), best);
    out += "</div>";
  }
  out += "<h2>Evaluations</h2>" + pager(v, evaluations.size(), "evaluations") +
         "<table class=\"evaluations\"><tr><th>#</th><th>kernel</th><th>origin</th><th>operator</th><th>status</th>"
         "<th>speedup</th><th>verified</th><th>at</th></tr>";
  const auto [first, last] = v.range(evaluations.size());
  for (std::size_t i = first; i < last; ++i) {
    const json& e = evaluations[i];
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                       i + 1, kernel_link(v, e["kernel_key"]), text(e["origin"]), text(e["operator"]),
                       status_span(e["status"]), num(e["speedup"], 3, "x"), real(e["verified"]) > 0 ? "yes" : "",
                       text(e["created_at"]));
  }
  return out + "</table>" + pager(v, evaluations.size(), "evaluations");
}

namespace {

// One evaluation of a kernel: its result and every measurement, compiler and kernel output.
std::string evaluation_html(const json& e, const View& v) {
  std::string out = fmt::format(
      "<div class=\"evaluation\"><h3>#{} {} on {} · {}</h3><p>{}</p><p>speedup {} over {} · verified {} · run {} · "
      "registers {} · spill {} B · shared {} B · binary {} B</p>",
      str(e["evaluation_id"]), status_span(e["status"]), device_link(v, e["device_key"]), text(e["created_at"]),
      text(e["message"]), num(e["speedup"], 3, "x"), text(e["baseline"]), real(e["verified"]) > 0 ? "yes" : "no",
      str(e["run_id"]).empty() ? "-" : run_link(v, e["run_id"]), text_or_dash(e["registers"]),
      text_or_dash(e["spill_bytes"]), text_or_dash(e["shared_bytes"]), text_or_dash(e["code_bytes"]));
  out += "<table><tr><th>shape</th><th>kind</th><th>correct</th><th>max abs err</th><th>n</th><th>median us</th>"
         "<th>p20</th><th>p80</th><th>cv</th><th>GB/s</th><th>GFLOP/s</th><th>baseline us</th><th>speedup</th>"
         "<th>% roofline</th></tr>";
  for (const auto& m : e["measurements"])
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3g}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        text(m["shape"]), text(m["kind"]), real(m["correct"]) > 0 ? "yes" : "no", real(m["max_abs_error"]),
        text(m["n"]), num(m["median_us"], 2), num(m["p20_us"], 2), num(m["p80_us"], 2), num(m["cv"], 3),
        num(m["gbps"], 1), num(m["gflops"], 1), num(m["baseline_median_us"], 2), num(m["speedup"], 3, "x"),
        num(m["roofline_pct"], 1));
  out += "</table>";
  if (!str(e["log"]).empty()) out += "<h4>Compiler output</h4>" + pre(e["log"]);
  if (!str(e["output"]).empty()) out += "<h4>Kernel output</h4>" + pre(e["output"]);
  return out + "</div>";
}

// The LLM call whose reply is the kernel: what was sent and what came back.
std::string llm_call_html(const json& k) {
  const json& call = k["llm_call"];
  if (call.is_null())
    return str(k["operator"]).rfind("llm", 0) == 0 ? "<p>No stored LLM call of its run yields this kernel.</p>" : "";
  std::string out = fmt::format("<h2>The LLM call that made it</h2><p>{} · {} + {} tokens · ${:.4f} · {} ms · {}</p>",
                                text(call["model"]), str(call["prompt_tokens"]), str(call["completion_tokens"]),
                                real(call["cost_usd"]), num(call["latency_ms"], 0), text(call["created_at"]));
  for (const auto& m : call["messages"]) out += fmt::format("<h4>{}</h4>{}", text(m["role"]), pre(m["content"], "prompt"));
  return out + "<h4>reply</h4>" + pre(call["reply"], "reply");
}

}  // namespace

// The kernel's facts; on the first page its source, diff and LLM call; a page of its evaluations.
std::string kernel_html(const json& k, const View& v) {
  std::string out = fmt::format(
      "<dl><dt>key</dt><dd><code>{}</code></dd><dt>task</dt><dd>{}</dd><dt>backend</dt><dd>{}</dd><dt>entry</dt>"
      "<dd>{}</dd><dt>origin</dt><dd>{}</dd><dt>operator</dt><dd>{}</dd><dt>parent</dt><dd>{}</dd><dt>run</dt><dd>{}</dd>"
      "<dt>params</dt><dd><code>{}</code></dd></dl>",
      text(k["kernel_key"]), text(k["task"]), text(k["backend"]), text(k["entry"]), text(k["origin"]), text(k["operator"]),
      kernel_link(v, k["parent_key"]), str(k["run_id"]).empty() ? "-" : run_link(v, k["run_id"]), text(k["params_json"]));
  const json& evaluations = k["evaluations"];
  if (v.page == 1) {
    if (!k["children"].empty()) {
      out += "<p>children: ";
      for (const auto& c : k["children"])
        out += kernel_link(v, c["kernel_key"], short_key(c["kernel_key"]) + " (" + text(c["operator"]) + ")") + " ";
      out += "</p>";
    }
    out += fmt::format("<h2>Source</h2><pre><code class=\"source language-cpp\">{}</code></pre>", text(k["source"]));
    if (!k["parent"].is_null())
      out += "<h2>Diff against its parent</h2>" + diff_html(str(k["parent"]["source"]), str(k["source"]));
  }
  out += "<h2>Evaluations</h2>" + pager(v, evaluations.size(), "evaluations");
  const auto [first, last] = v.range(evaluations.size());
  for (std::size_t i = first; i < last; ++i) out += evaluation_html(evaluations[i], v);
  out += pager(v, evaluations.size(), "evaluations");
  return v.page == 1 ? out + llm_call_html(k) : out;
}

std::string device_html(const json& d, const View& v) {
  const json& kernels = d["kernels"];
  std::string out = fmt::format(
      "<dl><dt>name</dt><dd>{}</dd><dt>vendor / arch / units</dt><dd>{} / {} / {}</dd><dt>bandwidth</dt><dd>{}</dd>"
      "<dt>peak</dt><dd>{}</dd></dl>",
      text(d["name"]), text(d["vendor"]), text(d["arch"]), str(d["units"]), num(d["bandwidth_gbps"], 1, " GB/s (measured)"),
      num(d["peak_gflops"], 1, " GFLOP/s (measured)"));
  if (v.page == 1) {
    int placed = 0;
    const std::string svg = roofline_svg(v, d, placed);
    out += fmt::format("<h2>Roofline</h2><p>{} of {} published kernels placed (the others have no GB/s or GFLOP/s).{}</p>",
                       placed, kernels.size(),
                       real(d["bandwidth_gbps"]) > 0 || real(d["peak_gflops"]) > 0
                           ? ""
                           : " This library holds no measured bandwidth or peak for the device: no roof is drawn.");
    out += svg;
  }
  out += pager(v, kernels.size(), "published kernels") +
         "<table><tr><th>op</th><th>problem</th><th>kernel</th><th>median us</th><th>GB/s</th><th>GFLOP/s</th>"
         "<th>speedup</th><th>% roofline</th></tr>";
  const auto [first, last] = v.range(kernels.size());
  for (std::size_t i = first; i < last; ++i) {
    const json& k = kernels[i];
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                       text(k["op"]), text(k["problem_key"]), kernel_link(v, k["kernel_key"]), num(k["median_us"], 2),
                       num(k["gbps"], 1), num(k["gflops"], 1), num(k["speedup"], 3, "x"), num(k["roofline_pct"], 1));
  }
  return out + "</table>" + pager(v, kernels.size(), "published kernels");
}

std::string library_html(const json& l, const View& v) {
  const json& c = l["counts"];
  const json& best = l["best"];
  std::string out = fmt::format(
      "<p>{} kernels · {} evaluations · {} measurements · {} problems · {} runs · {} LLM calls</p>"
      "<h2>Published (<code>best</code>): {} rows, {} stale</h2>",
      str(c["kernels"]), str(c["evaluations"]), str(c["measurements"]), str(c["problems"]), str(c["runs"]),
      str(c["llm_calls"]), str(c["best"]), str(c["stale_best"]));
  if (!str(l["run_id"]).empty())
    out += fmt::format("<p>The {} rows for the tasks of run {}.</p>", thousands(best.size()), run_link(v, l["run_id"]));
  out += pager(v, best.size(), "rows") +
         "<table><tr><th>problem</th><th>device</th><th>kernel</th><th>median us</th><th>speedup</th><th>% roofline</th>"
         "<th>samples</th><th>stale</th><th>published</th></tr>";
  const auto [first, last] = v.range(best.size());
  for (std::size_t i = first; i < last; ++i) {
    const json& b = best[i];
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        text(b["problem_key"]), device_link(v, b["device_key"]),
        kernel_link(v, b["kernel_key"], short_key(b["kernel_key"]) + " " + text(b["origin"])), num(b["median_us"], 2),
        num(b["speedup"], 3, "x"), num(b["roofline_pct"], 1), str(b["samples"]), real(b["stale"]) > 0 ? "stale" : "",
        text(b["published_at"]));
  }
  out += "</table>" + pager(v, best.size(), "rows");
  if (v.page > 1) return out;
  // The misses: the most looked-up first, as many as a page holds (all of them in the JSON).
  const json& misses = l["misses"];
  out += fmt::format("<h2>Lookups that missed: {} problems, {} lookups</h2>", str(c["misses"]),
                     real(c["missed_lookups"]) > 0 ? num(c["missed_lookups"], 0) : "0");
  if (misses.empty()) return out + "<p>None.</p>";
  if (misses.size() > v.per_page)
    out += fmt::format("<p>showing the {} most looked up of {} (all of them in <a href=\"api/{}.json\">JSON</a>)</p>",
                       v.per_page, thousands(misses.size()), v.name);
  out += "<table><tr><th>problem</th><th>device</th><th>lookups</th><th>first</th><th>last</th></tr>";
  for (std::size_t i = 0; i < std::min(misses.size(), v.per_page); ++i) {
    const json& m = misses[i];
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", text(m["problem_key"]),
                       text(m["device_key"]), str(m["count"]), text(m["first_seen"]), text(m["last_seen"]));
  }
  return out + "</table>";
}

std::string not_found_html(const std::string& what, bool highlight) {
  View v{.name = "index", .highlight = highlight};
  return layout("not found", "<p>" + esc(what) + "</p>", v, false);
}

}  // namespace kforge::web
