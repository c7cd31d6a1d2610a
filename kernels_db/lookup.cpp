// BestKernels: the published table in memory, and the lookup's fallback chain.
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

std::string family_key(const std::string& op, int op_version, const std::string& dtype, const std::string& static_key) {
  std::string key;
  key.reserve(op.size() + dtype.size() + static_key.size() + 8);
  key += op;
  key += '\x1f';
  key += std::to_string(op_version);
  key += '\x1f';
  key += dtype;
  key += '\x1f';
  key += static_key;
  return key;
}

// nullopt (no dynamic dim) sorts first.
std::int64_t dyn_order(const BestRecord& b) {
  return b.dyn ? *b.dyn : INT64_MIN;
}

// Among entries [first, last) sorted by dyn: the one with `dyn`, else the nearest (the smaller on a
// tie); `exact` says which.
const BestKernels::Entry* nearest(const BestKernels::Entry* first, const BestKernels::Entry* last,
                                  std::optional<std::int64_t> dyn, bool& exact) {
  if (first == last) return nullptr;
  const std::int64_t want = dyn ? *dyn : INT64_MIN;
  const auto* it = std::lower_bound(first, last, want,
                                    [](const BestKernels::Entry& e, std::int64_t v) { return dyn_order(e.best) < v; });
  if (it != last && dyn_order(it->best) == want) return exact = true, it;
  exact = false;
  if (!dyn) return nullptr;  // a static query matches only a static row
  const BestKernels::Entry* below = it != first && (it - 1)->best.dyn ? it - 1 : nullptr;
  const BestKernels::Entry* above = it != last ? it : nullptr;
  if (!below) return above;
  if (!above) return below;
  return *dyn - *below->best.dyn <= *above->best.dyn - *dyn ? below : above;
}

}  // namespace

Result<BestKernels> BestKernels::load(const std::string& path, const std::string& device_key) {
  auto store = KernelStore::open(path, /*read_only=*/true);
  if (!store) return store.error();
  auto rows = store->best();
  if (!rows) return rows.error();
  const DeviceRecord me = parse_device_key(device_key);

  BestKernels out;
  out.path_ = path;
  out.device_key_ = device_key;
  out.units_ = me.units;
  // Per (problem, device): the non-stale row, else the fastest stale one.
  std::map<std::pair<std::string, std::string>, Entry> chosen;
  for (auto& b : *rows) {
    const DeviceRecord device = parse_device_key(b.device_key);
    if (device.vendor != me.vendor || device.arch != me.arch) continue;
    auto [it, added] = chosen.try_emplace({b.problem_key, b.device_key}, Entry{b, device.units});
    Entry& e = it->second;
    if (!added && ((e.best.stale && !b.stale) || (e.best.stale == b.stale && b.median_us < e.best.median_us)))
      e = Entry{b, device.units};
  }
  for (auto& [key, entry] : chosen) {
    Family& f =
        out.families_[family_key(entry.best.op, entry.best.op_version, entry.best.dtype, entry.best.static_key)];
    (entry.best.device_key == device_key ? f.here : f.other).push_back(std::move(entry));
    ++out.rows_;
  }
  const int units = me.units;
  for (auto& [key, f] : out.families_) {
    std::sort(f.here.begin(), f.here.end(),
              [](const Entry& a, const Entry& b) { return dyn_order(a.best) < dyn_order(b.best); });
    std::sort(f.other.begin(), f.other.end(), [units](const Entry& a, const Entry& b) {
      const int da = std::abs(a.units - units), db = std::abs(b.units - units);
      if (da != db) return da < db;
      if (a.units != b.units) return a.units < b.units;
      return dyn_order(a.best) < dyn_order(b.best);
    });
  }

  // The kernels the rows name, source included, for the caller to compile.
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  {
    db::Statement st(db,
                     "SELECT kernel_key, task, backend, entry, source, params_json, origin, parent_key, operator, "
                     "run_id FROM kernel WHERE kernel_key IN (SELECT kernel_key FROM best)");
    while (st.step() == SQLITE_ROW)
      out.kernels_.emplace(st.text(0), KernelRecord{st.text(0), st.text(1), st.text(2), st.text(3), st.text(4),
                                                    st.text(5), st.text(6), st.text(7), st.text(8), st.text(9)});
  }
  sqlite3_close(db);
  return out;
}

BestKernels::Resolution BestKernels::resolve(const ProblemQuery& query) const {
  auto it = families_.find(family_key(query.op, query.op_version, query.dtype, query.static_key));
  if (it != families_.end()) {
    const Family& f = it->second;
    bool exact = false;
    if (const Entry* e = nearest(f.here.data(), f.here.data() + f.here.size(), query.dyn, exact))
      return {exact ? Match::exact : Match::nearest_dyn, e};
    if (!f.other.empty()) {  // the unit count nearest ours, then its nearest dyn
      const Entry* first = f.other.data();
      const Entry* last = first;
      while (last != f.other.data() + f.other.size() && last->units == first->units) ++last;
      if (const Entry* e = nearest(first, last, query.dyn, exact)) return {Match::nearest_device, e};
    }
  }
  std::lock_guard lock(miss_mutex_);
  auto [miss, added] = misses_.try_emplace(problem_key(query), query, 0);
  ++miss->second.second;
  return {};
}

Status BestKernels::flush_misses() {
  std::lock_guard lock(miss_mutex_);
  if (misses_.empty()) return {};
  auto store = KernelStore::open(path_);
  if (!store) return store.error();
  for (const auto& [key, miss] : misses_)
    if (auto s = store->record_miss(miss.first, device_key_, miss.second); !s) return s;
  misses_.clear();
  return {};
}

const KernelRecord* BestKernels::kernel(const std::string& kernel_key) const {
  auto it = kernels_.find(kernel_key);
  return it == kernels_.end() ? nullptr : &it->second;
}

BestKernels::BestKernels(BestKernels&& other) noexcept
    : path_(std::move(other.path_)),
      device_key_(std::move(other.device_key_)),
      units_(other.units_),
      rows_(other.rows_),
      families_(std::move(other.families_)),
      kernels_(std::move(other.kernels_)),
      misses_(std::move(other.misses_)) {}

}  // namespace kforge
