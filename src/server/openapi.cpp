// The OpenAPI 3 document of `ecr serve` (GET /openapi.json). The response schemas list the keys
// the handlers write (server.cpp, and src/cli's turn_json and recommendation_json) as required;
// tests/test_serve.py checks every answer against them.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "server.hpp"

namespace ecr::server {

namespace {

constexpr const char* kDocument = R"json({
  "openapi": "3.0.3",
  "info": {"title": "ecr serve", "version": "1",
           "description": "Empathetic Conversational Recommender over HTTP: recommendations with reasons, emotions and feedback, and ECR's reply, streamed."},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
      "Dialog": {"type": "object", "required": ["turns"], "properties": {
        "turns": {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "object", "required": ["role", "text"], "properties": {
          "role": {"type": "string", "enum": ["user", "system"]}, "text": {"type": "string", "maxLength": 4096},
          "entities": {"type": "array", "items": {"type": "integer", "minimum": 0}},
          "emotions": {"type": "object", "additionalProperties": false, "properties": {
            "like": {"$ref": "#/components/schemas/Probability"}, "curious": {"$ref": "#/components/schemas/Probability"},
            "happy": {"$ref": "#/components/schemas/Probability"}, "grateful": {"$ref": "#/components/schemas/Probability"},
            "negative": {"$ref": "#/components/schemas/Probability"}, "neutral": {"$ref": "#/components/schemas/Probability"},
            "nostalgia": {"$ref": "#/components/schemas/Probability"}, "agreement": {"$ref": "#/components/schemas/Probability"},
            "surprise": {"$ref": "#/components/schemas/Probability"}}}}}},
        "movieMentions": {"type": "object", "additionalProperties": {"type": "string"}}}},
      "Probability": {"type": "number", "minimum": 0, "maximum": 1},
      "Emotion": {"type": "object", "required": ["label", "prob"], "properties": {"label": {"type": "string"}, "prob": {"type": "number"}}},
      "Item": {"type": "object", "required": ["id", "name", "score", "feedback", "reasons", "explanation"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number"}, "feedback": {"type": "number"},
        "reasons": {"type": "array", "items": {"type": "object", "required": ["kind", "source", "source_name", "source_liked", "text"]}},
        "explanation": {"type": "string"}}},
      "Feedback": {"type": "object", "required": ["id", "name", "polarity", "cue", "turn", "referred_back"]},
      "Recommendation": {"type": "object", "required": ["items", "turns", "context_entities", "prompt_entities", "emotion_fusion",
                                                         "user_emotions", "feedback", "context_ids", "prompt_ids", "untrained"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
        "turns": {"type": "array", "items": {"type": "object", "required": ["role", "text", "entities"]}},
        "context_entities": {"type": "array", "items": {"type": "object"}},
        "prompt_entities": {"type": "array", "items": {"type": "object"}},
        "emotion_fusion": {"type": "boolean"},
        "user_emotions": {"type": "array", "items": {"$ref": "#/components/schemas/Emotion"}},
        "feedback": {"type": "array", "items": {"$ref": "#/components/schemas/Feedback"}},
        "context_ids": {"type": "array", "items": {"type": "integer"}},
        "prompt_ids": {"type": "array", "items": {"type": "integer"}},
        "untrained": {"type": "boolean"}}},
      "Turn": {"type": "object", "required": ["untrained", "items", "user_emotions", "feedback", "reply", "template", "first_sentence",
                                               "reply_items", "review_entities", "knowledge", "prompt_text", "template_ids", "reply_ids", "finish_reason"], "properties": {
        "untrained": {"type": "boolean"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
        "user_emotions": {"type": "array", "items": {"$ref": "#/components/schemas/Emotion"}},
        "feedback": {"type": "array", "items": {"$ref": "#/components/schemas/Feedback"}},
        "reply": {"type": "string"}, "template": {"type": "string"}, "first_sentence": {"type": "string"},
        "reply_items": {"type": "array", "items": {"type": "object", "required": ["id", "name"]}},
        "review_entities": {"type": "array", "items": {"type": "string"}},
        "knowledge": {"type": "array", "items": {"type": "string"}},
        "prompt_text": {"type": "string"},
        "template_ids": {"type": "array", "items": {"type": "integer"}},
        "reply_ids": {"type": "array", "items": {"type": "integer"}},
        "finish_reason": {"type": "string", "enum": ["stop", "length", "deadline"],
                          "description": "stop: the reply ended; length: it took all of --max-new-tokens; deadline: cut at the request's --request-timeout"}}},
      "SessionTurn": {"allOf": [{"$ref": "#/components/schemas/Turn"},
                                {"type": "object", "required": ["session", "turns"], "properties": {"session": {"type": "string"}, "turns": {"type": "integer"}}}]},
      "Session": {"type": "object", "required": ["id", "turns"], "properties": {"id": {"type": "string"}, "turns": {"type": "array"},
                                                                              "idle_seconds": {"type": "integer"}}},
      "Health": {"type": "object", "required": ["status", "bundle", "items", "untrained"], "properties": {
        "status": {"type": "string"}, "bundle": {"type": "string"}, "items": {"type": "integer"}, "untrained": {"type": "boolean"}}},
      "ChatRequest": {"type": "object", "required": ["messages"], "properties": {
        "model": {"type": "string"}, "stream": {"type": "boolean"},
        "messages": {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "object", "required": ["role", "content"], "properties": {
          "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]}, "content": {"type": "string", "maxLength": 4096}}}}}},
      "TurnEvent": {"type": "object", "required": ["data"], "description": "One Server-Sent Event: without a name, data is {\"piece\": string} (the pieces add up to the reply); event 'result' carries the Turn as JSON, event 'error' an Error",
        "properties": {"event": {"type": "string", "enum": ["result", "error"]}, "data": {"type": "string"}}},
      "ChatChunkEvent": {"type": "object", "required": ["data"], "description": "One Server-Sent Event whose data is a chat.completion.chunk as JSON (the last one with finish_reason, usage and ecr), an Error, or [DONE]",
        "properties": {"data": {"type": "string"}}},
      "ChatCompletion": {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage", "ecr"], "properties": {
        "id": {"type": "string"}, "object": {"type": "string", "enum": ["chat.completion"]}, "created": {"type": "integer"}, "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"], "properties": {
          "finish_reason": {"type": "string", "enum": ["stop", "length"], "description": "a reply cut at the deadline is length; ecr.finish_reason tells which"}}}},
        "usage": {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"]},
        "ecr": {"$ref": "#/components/schemas/Turn"}}}
    },
    "responses": {
      "BadRequest": {"description": "Malformed JSON, a wrong type, a limit passed (the field is named)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "No or a wrong bearer key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "No such session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "TooLarge": {"description": "The body is over the limit", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Busy": {"description": "Every worker is busy and the queue is full, or no worker was free before the request's deadline (Retry-After)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "security": [{"bearer": []}],
  "paths": {
    "/health": {"get": {"summary": "The bundle is loaded and the server answers", "security": [],
      "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
    "/v1/recommend": {"post": {"summary": "Ranked items for a dialog (ecr recommend --json)",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dialog"}}}},
      "responses": {"200": {"description": "The recommendation", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recommendation"}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                    "413": {"$ref": "#/components/responses/TooLarge"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/v1/respond": {"post": {"summary": "Recommend and reply (ecr respond --json); Accept: text/event-stream streams events {\"piece\"} then event 'result' with the Turn",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dialog"}}}},
      "responses": {"200": {"description": "The turn", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Turn"}},
                                                                   "text/event-stream": {"schema": {"$ref": "#/components/schemas/TurnEvent"}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                    "413": {"$ref": "#/components/responses/TooLarge"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/v1/sessions": {"post": {"summary": "A new dialog kept by the server (least recently used evicted past --max-sessions; dropped when idle)",
      "responses": {"201": {"description": "The session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}},
                    "401": {"$ref": "#/components/responses/Unauthorized"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/v1/sessions/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"}}],
      "get": {"summary": "The session's dialog",
        "responses": {"200": {"description": "The session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}},
                      "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"}}},
      "delete": {"summary": "Forget the session",
        "responses": {"204": {"description": "Deleted"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/v1/sessions/{id}/turns": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"}}],
      "post": {"summary": "One user turn (ecr chat): streamed as /v1/respond on Accept: text/event-stream",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["text"],
                                                                                      "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 4096}}}}}},
        "responses": {"200": {"description": "The turn", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionTurn"}},
                                                                     "text/event-stream": {"schema": {"$ref": "#/components/schemas/TurnEvent"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}, "409": {"description": "The session is taking another turn",
                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                      "413": {"$ref": "#/components/responses/TooLarge"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/v1/chat/completions": {"post": {"summary": "OpenAI-compatible chat: the reply as the assistant message, ECR's results in 'ecr'; stream: chat.completion.chunk events then [DONE]",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
      "responses": {"200": {"description": "The completion", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                                                                         "text/event-stream": {"schema": {"$ref": "#/components/schemas/ChatChunkEvent"}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                    "413": {"$ref": "#/components/responses/TooLarge"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/metrics": {"get": {"summary": "Prometheus text: requests by route and status, latency histograms, queue depth, tokens",
      "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/openapi.json": {"get": {"summary": "This document",
      "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/": {"get": {"summary": "The chat page", "security": [],
      "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}}
  }
})json";

}  // namespace

std::string openapi_json(const Limits& limits, std::int64_t max_entity) {
  // Made once at startup, so a typo in the document fails there rather than reaching a client.
  // The limits and the knowledge graph's entity ids are this server's, so that what the
  // document calls valid is what the server takes (schemathesis checks both ways).
  nlohmann::json doc = nlohmann::json::parse(kDocument);
  auto& schemas = doc["components"]["schemas"];
  auto& turns = schemas["Dialog"]["properties"]["turns"];
  turns["maxItems"] = limits.max_turns;
  turns["items"]["properties"]["entities"]["items"]["maximum"] = max_entity;
  auto& messages = schemas["ChatRequest"]["properties"]["messages"];
  messages["maxItems"] = limits.max_turns;
  // maxLength counts characters and the limit bytes: a text of max_text_bytes ASCII characters
  // is taken, a longer one never (the document's bound is the larger; the 400 names the field).
  turns["items"]["properties"]["text"]["maxLength"] = limits.max_text_bytes;
  messages["items"]["properties"]["content"]["maxLength"] = limits.max_text_bytes;
  doc["paths"]["/v1/sessions/{id}/turns"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
     ["text"]["maxLength"] = limits.max_text_bytes;
  return doc.dump();
}

}  // namespace ecr::server
