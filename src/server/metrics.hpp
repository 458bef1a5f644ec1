// What `ecr serve` counts, written in Prometheus's text format (GET /metrics): requests by route
// and status, a latency histogram by route, and the reply tokens generated with the seconds the
// generator took (rate() of the two gives tokens/s); the gauges (queue depth, sessions) are the
// caller's to add at scrape time.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace ecr::server {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf follows).
  static constexpr std::array<double, 12> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30};

  // `route` is the pattern ("/v1/sessions/{id}/turns"), never the path: a label per session id
  // would grow without bound.
  void request(const std::string& route, int status, double seconds);
  void generated(std::size_t tokens, double seconds);

  // Every counter and histogram, then `gauges` (lines already in the text format).
  std::string text(const std::string& gauges) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::uint64_t tokens_ = 0;
  double generation_seconds_ = 0;
};

}  // namespace ecr::server
