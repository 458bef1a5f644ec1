#include "metrics.hpp"

#include <fmt/format.h>

namespace ecr::server {

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
  Histogram& h = latency_[route];
  for (std::size_t b = 0; b < kBuckets.size(); ++b)
    if (seconds <= kBuckets[b]) ++h.counts[b];
  ++h.count;
  h.sum += seconds;
}

void Metrics::generated(std::size_t tokens, double seconds) {
  std::lock_guard lock(mutex_);
  tokens_ += tokens;
  generation_seconds_ += seconds;
}

std::string Metrics::text(const std::string& gauges) const {
  std::lock_guard lock(mutex_);
  std::string out =
      "# HELP ecr_http_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE ecr_http_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("ecr_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += "# HELP ecr_http_request_duration_seconds Time from a request's arrival to its handler's return "
         "(a stream's first byte).\n"
         "# TYPE ecr_http_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    for (std::size_t b = 0; b < kBuckets.size(); ++b)
      out += fmt::format("ecr_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route, kBuckets[b],
                         h.counts[b]);
    out += fmt::format("ecr_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, h.count);
    out += fmt::format("ecr_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, h.sum);
    out += fmt::format("ecr_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, h.count);
  }
  out += fmt::format(
      "# HELP ecr_generated_tokens_total Reply tokens the generator wrote.\n"
      "# TYPE ecr_generated_tokens_total counter\n"
      "ecr_generated_tokens_total {}\n"
      "# HELP ecr_generation_seconds_total Seconds spent writing replies (tokens/s: the rate of the two).\n"
      "# TYPE ecr_generation_seconds_total counter\n"
      "ecr_generation_seconds_total {}\n"
      "# HELP ecr_tokens_per_second Reply tokens per second of generation since start.\n"
      "# TYPE ecr_tokens_per_second gauge\n"
      "ecr_tokens_per_second {}\n",
      tokens_, generation_seconds_, generation_seconds_ > 0 ? static_cast<double>(tokens_) / generation_seconds_ : 0.0);
  return out + gauges;
}

}  // namespace ecr::server
