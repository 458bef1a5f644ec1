// One turn of a conversation: the Recommender's items, then the Responder's reply about them.
// Kept apart from responder.cpp so that using the Responder alone does not link the Recommender.
#include "ecr/responder.hpp"

namespace ecr {

Responder::Turn Responder::converse(const Recommender& recommender, const Responder& responder, const Dialog& dialog,
                                    const RecommendRequest& request, const ReplyStream& stream) {
  Turn turn;
  turn.recommendation = recommender.recommend(dialog, request);
  turn.response = responder.respond(dialog, turn.recommendation, stream);
  return turn;
}

}  // namespace ecr
