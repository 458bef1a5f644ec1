"""ecr: the Empathetic Conversational Recommender (RecSys 2024) on the project's C++ engine.

    import ecr
    recommender = ecr.Recommender.load()          # the shipped model, or ecr.Recommender.load("x.ecr")
    rec = recommender.recommend({"turns": [{"role": "user", "text": "I loved The Matrix (1999)"}]}, top_k=5)
    for item in rec.items:
        print(item.name, item.score)

    responder = ecr.Responder.load(recommender=recommender)
    for piece in responder.stream(dialog):       # the reply as it decodes, whole characters
        print(piece, end="", flush=True)

    llm = ecr.LLM.load("SmolLM2-135M-Instruct.Q4_1.gguf")  # a Llama-family GGUF model
    print(llm.generate("Recommend a movie.", chat=True, max_tokens=40))

Loaded models are immutable and shared across threads; inference releases the GIL. Failures
are ecr.Error subclasses (ecr.InputError for a bad dialog, ecr.FormatError for a bad file, ...).
The converter (PyTorch checkpoints -> bundle) is `python3 -m ecr.convert`; importing ecr never
imports torch.
"""

from .errors import ConfigError, DeviceError, Error, FormatError, InputError, IoError, ShapeError
from .results import (Emotion, Entity, Feedback, Item, Knowledge, PromptEntity, Reason, Recommendation, Response,
                      TensorInfo, Turn, TurnAnalysis)
from ._ecr import (EMOTION_LABELS, LLM, Bundle, Dialog, KnowledgeGraph, Recommender, ReplyStream, Responder, TextStream,
                   Tokenizer, __version__, cuda_available, default_bundle_path)

__all__ = [
    "Recommender", "Responder", "ReplyStream", "LLM", "TextStream", "Dialog", "Bundle", "Tokenizer", "KnowledgeGraph",
    "default_bundle_path", "cuda_available", "EMOTION_LABELS", "__version__",
    "Error", "FormatError", "ShapeError", "InputError", "IoError", "DeviceError", "ConfigError",
    "Emotion", "Entity", "Item", "Knowledge", "PromptEntity", "Recommendation", "Response", "TensorInfo", "Turn",
    "TurnAnalysis", "Reason", "Feedback",
]
