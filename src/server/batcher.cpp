#include "batcher.hpp"

#include "ecr/core/error.hpp"

namespace ecr::server {

Response ReplyBatcher::respond(const Dialog& dialog, const Recommendation& recommendation, ReplyStream stream,
                               bool company) {
  Job job{&dialog, &recommendation, std::move(stream), std::nullopt, nullptr};
  std::unique_lock lock(mutex_);
  open_.push_back(&job);
  if (open_.size() > 1) {
    // A later job: the batch's first worker writes it.
    if (open_.size() >= max_batch_) changed_.notify_all();
    changed_.wait(lock, [&] { return job.done; });
  } else {
    if (company) changed_.wait_for(lock, wait_, [&] { return open_.size() >= max_batch_; });
    std::vector<Job*> batch;
    batch.swap(open_);  // later arrivals start the next batch
    lock.unlock();
    ++batches_;
    replies_ += batch.size();
    write(batch);
    lock.lock();
    for (Job* j : batch) j->done = true;
    changed_.notify_all();
  }
  if (job.error) std::rethrow_exception(job.error);
  return std::move(*job.response);
}

void ReplyBatcher::write(std::vector<Job*>& batch) const {
  if (batch.size() > 1) {
    std::vector<Dialog> dialogs;
    std::vector<Recommendation> recommendations;
    std::vector<ReplyStream> streams;
    for (const Job* j : batch) {
      dialogs.push_back(*j->dialog);
      recommendations.push_back(*j->recommendation);
      streams.push_back(j->stream);
    }
    try {
      std::vector<Response> responses = responder_.respond_batch(dialogs, recommendations, streams);
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->response = std::move(responses[i]);
      return;
    } catch (const InputError&) {
      // One request's input failed the batch (every one is checked before decoding starts): each
      // is written alone below, so that only that one gets the error.
    } catch (...) {
      for (Job* j : batch) j->error = std::current_exception();
      return;
    }
  }
  for (Job* j : batch) {
    try {
      j->response = responder_.respond(*j->dialog, *j->recommendation, j->stream);
    } catch (...) {
      j->error = std::current_exception();
    }
  }
}

}  // namespace ecr::server
