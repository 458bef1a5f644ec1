"""Plain-PyTorch references the C++ engine is tested against, written from docs/math.md without the
transformers or torch-geometric packages: one GPT-2 (gpt2), one RoBERTa (roberta), one R-GCN
(rgcn), KGPrompt on top of it (kgprompt), and their compositions: the recommendation
(recommender) and the Responder's decoding (responder). `python3 -m tools.reference` runs GPT-2
and RoBERTa from the command line.
"""
