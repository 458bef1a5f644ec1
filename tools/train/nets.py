"""The models the trainer fits, as torch modules whose state dicts export to the published key
layouts the converter reads (docs/math.md appendix A): HuggingFace GPT2LMHeadModel /
GPT2ForSequenceClassification, RobertaModel, ECR's rec KGPrompt and UniCRS's conv KGPrompt.

Vocabulary: the models train on the tokens the training text uses ("seen" rows) and export
every other row of the 50k-row embedding as zeros. The LM loss is still the full-vocabulary
softmax of the exported model: each zero row has logit 0, so the partition function gains
n_unseen * exp(0), added in closed form (`lm_loss`). Training costs the seen rows only, and the
zero rows cost almost nothing in a zstd bundle.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..reference.rgcn import relation_index, rgcn


class CompactVocab:
    """Full token ids <-> the rows the model trains (sorted seen ids)."""

    def __init__(self, seen, full_size):
        self.ids = torch.tensor(sorted(set(seen)), dtype=torch.long)
        self.full_size = full_size
        self.to_compact = torch.full((full_size,), -1, dtype=torch.long)
        self.to_compact[self.ids] = torch.arange(len(self.ids))

    def __len__(self):
        return len(self.ids)

    def compact(self, ids):
        """Compact ids of model inputs: a token the training text never had maps to row
        len(self), the zero row every unseen token has in the exported model."""
        out = self.to_compact[torch.as_tensor(ids, dtype=torch.long)]
        return torch.where(out < 0, torch.full_like(out, len(self.ids)), out)

    def targets(self, ids):
        """Compact ids of prediction targets, which must be seen tokens."""
        out = self.to_compact[torch.as_tensor(ids, dtype=torch.long)]
        if (out < 0).any():
            raise ValueError("a target token outside the training vocabulary")
        return out

    def expand(self, rows):
        """(n_seen, D) -> (full_size, D) with zero rows for unseen tokens."""
        full = torch.zeros(self.full_size, rows.shape[1], dtype=rows.dtype)
        full[self.ids] = rows.detach()
        return full

    @property
    def unseen(self):
        return self.full_size - len(self.ids)


def lm_loss(hidden, wte, targets, unseen, weights=None):
    """Full-vocabulary cross entropy of tied-head logits where the unseen rows are zero.
    hidden (n, D), wte (n_seen, D), targets (n,) compact ids."""
    logits = hidden @ wte.T
    log_z = torch.logaddexp(torch.logsumexp(logits, -1), torch.tensor(math.log(max(unseen, 1))))
    loss = log_z - logits.gather(1, targets[:, None])[:, 0]
    return loss.mean() if weights is None else (loss * weights).sum() / weights.sum()


def with_zero_row(rows):
    """The trained rows plus the zero row of every unseen token (CompactVocab.compact)."""
    return torch.cat([rows, rows.new_zeros(1, rows.shape[1])])


# --- GPT-2 ----------------------------------------------------------------------------------------

class Conv1D(nn.Module):
    """HuggingFace's Conv1D: weight (in, out)."""

    def __init__(self, n_in, n_out, std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * std)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class Gpt2Block(nn.Module):
    def __init__(self, d, n_head, n_layer, dropout):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        proj_std = 0.02 / math.sqrt(2 * n_layer)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = Conv1D(d, 3 * d), Conv1D(d, d, proj_std)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(d, 4 * d), Conv1D(4 * d, d, proj_std)

    def forward(self, x, prefix_kv=None, prefix_mask=None):
        b, t, d = x.shape
        nh, hd = self.n_head, d // self.n_head
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(d, -1)
        q, k, v = (y.view(b, t, nh, hd).transpose(1, 2) for y in (q, k, v))
        mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
        if prefix_kv is not None:  # (B, S, 2, nh, hd): every query sees the whole (unpadded) prefix
            pk, pv = prefix_kv[:, :, 0].transpose(1, 2), prefix_kv[:, :, 1].transpose(1, 2)
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
            mask = torch.cat([prefix_mask[:, None, None, :].expand(b, 1, t, -1), mask.expand(b, 1, t, t)], -1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~mask, -1e9)
        att = F.dropout(scores.softmax(-1), self.dropout, self.training)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + F.dropout(self.attn.c_proj(y), self.dropout, self.training)
        h = F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh")
        return x + F.dropout(self.mlp.c_proj(h), self.dropout, self.training)


class Gpt2(nn.Module):
    def __init__(self, vocab, d, n_layer, n_head, n_positions, num_labels=0, dropout=0.1):
        super().__init__()
        self.vocab, self.d, self.n_layer, self.n_head, self.n_positions = vocab, d, n_layer, n_head, n_positions
        self.transformer = nn.Module()
        self.transformer.wte = nn.Parameter(torch.randn(len(vocab), d) * 0.02)
        self.transformer.wpe = nn.Parameter(torch.randn(n_positions, d) * 0.01)
        self.transformer.h = nn.ModuleList(Gpt2Block(d, n_head, n_layer, dropout) for _ in range(n_layer))
        self.transformer.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.score = nn.Parameter(torch.randn(num_labels, d) * 0.02) if num_labels else None

    def forward(self, ids, prefix=None, prefix_mask=None):
        """ids (B, T) compact; prefix (B, S, n_layer*2*d) read as (S, layer, key|value, head,
        head_dim), prefix_mask (B, S) true for real rows. Returns hidden states after ln_f."""
        tr = self.transformer
        x = F.dropout(with_zero_row(tr.wte)[ids] + tr.wpe[: ids.shape[1]], self.transformer.h[0].dropout, self.training)
        kv = None
        if prefix is not None:
            b, s, _ = prefix.shape
            kv = prefix.view(b, s, self.n_layer, 2, self.n_head, self.d // self.n_head)
        for layer, block in enumerate(tr.h):
            x = block(x, None if kv is None else kv[:, :, layer], prefix_mask)
        return tr.ln_f(x)

    def hf_state_dict(self):
        """GPT2LMHeadModel (tied lm_head) or GPT2ForSequenceClassification keys, full vocabulary."""
        sd = {k: v.detach().clone() for k, v in self.state_dict().items() if k != "transformer.wte"}
        sd = {("transformer.wpe.weight" if k == "transformer.wpe" else k): v for k, v in sd.items()}
        sd["transformer.wte.weight"] = self.vocab.expand(self.transformer.wte)
        if self.score is not None:
            sd["score.weight"] = sd.pop("score")
        else:
            sd["lm_head.weight"] = sd["transformer.wte.weight"]
        return sd


# --- RoBERTa --------------------------------------------------------------------------------------

class RobertaLayer(nn.Module):
    def __init__(self, d, n_head, inner, dropout):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for part in ("query", "key", "value"):
            setattr(self.attention.self, part, nn.Linear(d, d))
        self.attention.output = nn.Module()
        self.attention.output.dense, self.attention.output.LayerNorm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-5)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, inner)
        self.output = nn.Module()
        self.output.dense, self.output.LayerNorm = nn.Linear(inner, d), nn.LayerNorm(d, eps=1e-5)

    def forward(self, x, key_mask):
        b, t, d = x.shape
        nh, hd = self.n_head, d // self.n_head
        s = self.attention.self
        q, k, v = (p(x).view(b, t, nh, hd).transpose(1, 2) for p in (s.query, s.key, s.value))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~key_mask[:, None, None, :], -1e9)
        y = (F.dropout(scores.softmax(-1), self.dropout, self.training) @ v).transpose(1, 2).reshape(b, t, d)
        o = self.attention.output
        x = o.LayerNorm(x + F.dropout(o.dense(y), self.dropout, self.training))
        h = self.output.dense(F.gelu(self.intermediate.dense(x)))
        return self.output.LayerNorm(x + F.dropout(h, self.dropout, self.training))


class Roberta(nn.Module):
    """RobertaModel plus a masked-LM head tied to the word embeddings (the head is not exported)."""

    def __init__(self, vocab, d, n_layer, n_head, inner, max_positions, pad_full_id, dropout=0.1):
        super().__init__()
        self.vocab, self.pad = vocab, int(vocab.to_compact[pad_full_id])
        self.embeddings = nn.Module()
        e = self.embeddings
        e.word_embeddings = nn.Parameter(torch.randn(len(vocab), d) * 0.02)
        e.position_embeddings = nn.Parameter(torch.randn(max_positions, d) * 0.02)
        e.token_type_embeddings = nn.Parameter(torch.randn(1, d) * 0.02)
        e.LayerNorm = nn.LayerNorm(d, eps=1e-5)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(RobertaLayer(d, n_head, inner, dropout) for _ in range(n_layer))
        self.mlm_dense, self.mlm_norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-5)
        self.mlm_bias = nn.Parameter(torch.zeros(len(vocab)))
        self.dropout = dropout

    def forward(self, ids):
        """ids (B, T) compact, right-padded with <pad>; positions as HuggingFace numbers them."""
        key_mask = ids != self.pad
        positions = torch.cumsum(key_mask.long(), 1) * key_mask + 1
        e = self.embeddings
        x = with_zero_row(e.word_embeddings)[ids] + e.position_embeddings[positions] + e.token_type_embeddings[0]
        x = F.dropout(e.LayerNorm(x), self.dropout, self.training)
        for layer in self.encoder.layer:
            x = layer(x, key_mask)
        return x

    def mlm_logits(self, hidden):
        h = self.mlm_norm(F.gelu(self.mlm_dense(hidden)))
        return h @ self.embeddings.word_embeddings.T + self.mlm_bias

    def hf_state_dict(self):
        sd = {}
        for k, v in self.state_dict().items():
            if k.startswith("mlm_"):
                continue
            if k in ("embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings"):
                k += ".weight"
            sd[k] = v.detach().clone()
        sd["embeddings.word_embeddings.weight"] = self.vocab.expand(self.embeddings.word_embeddings)
        return sd


# --- KGPrompt -------------------------------------------------------------------------------------

def mlp(d_in, d_hidden, d_out):
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


class RGCN(nn.Module):
    """The R-GCN of tools.reference.rgcn (PyG RGCNConv, bases, mean per relation) with trainable
    weight (bases, d, d), comp (R, bases), root (d, d), bias (d)."""

    def __init__(self, d, num_relations, num_bases, edges, n_entity):
        super().__init__()
        bound = math.sqrt(6.0 / (2 * d))
        self.weight = nn.Parameter((torch.rand(num_bases, d, d) * 2 - 1) * bound)
        self.comp = nn.Parameter((torch.rand(num_relations, num_bases) * 2 - 1) * math.sqrt(6.0 / (num_relations + num_bases)))
        self.root = nn.Parameter((torch.rand(d, d) * 2 - 1) * bound)
        self.bias = nn.Parameter(torch.zeros(d))
        self.per_relation = relation_index(edges, n_entity, num_relations)

    def forward(self, x):
        return rgcn(x, self.per_relation, self.weight, self.comp, self.root, self.bias)


class KGPrompt(nn.Module):
    """ECR's rec KGPrompt (kind "rec") or UniCRS's conv KGPrompt (kind "conv"), docs/math.md section 4."""

    def __init__(self, kind, hidden, token_hidden, n_layer, n_entity, num_relations, num_bases, edges, n_prefix,
                 n_emotion=9):
        super().__init__()
        H, T, d, h = hidden, token_hidden, hidden // 2, hidden // 16
        self.kind, self.hidden, self.n_layer = kind, H, n_layer
        self.kg_encoder = RGCN(d, num_relations, num_bases, edges, n_entity)
        self.node_embeds = nn.Parameter((torch.rand(n_entity, d) * 2 - 1) * math.sqrt(6.0 / (n_entity + d)))
        self.entity_proj1, self.entity_proj2 = mlp(d, d // 2, d), nn.Linear(d, H)
        self.token_proj1, self.token_proj2 = mlp(T, T // 2, T), nn.Linear(T, H)
        self.cross_attn = nn.Linear(H, H, bias=False)
        self.prompt_proj1, self.prompt_proj2 = mlp(H, H // 2, H), nn.Linear(H, n_layer * 2 * H)
        if kind == "rec":
            self.emo_embeds = nn.Parameter((torch.rand(n_emotion + 1, T) * 2 - 1) * math.sqrt(6.0 / (n_emotion + 1 + T)))
            self.emo_proj1, self.emo_proj2 = mlp(T, T // 2, T), nn.Linear(T, h)
            self.emo_fuse_proj1, self.emo_fuse_proj2 = mlp(H + h, H, H + h), nn.Linear(H + h, H)
            self.rec_prefix_embeds = nn.Parameter(torch.randn(n_prefix, H) * 0.02)
            self.rec_prefix_proj = mlp(H, H // 2, H)
        else:
            self.conv_prefix_embeds = nn.Parameter(torch.randn(n_prefix, H) * 0.02)
            self.conv_prefix_proj = mlp(H, H // 2, H)

    def entity_table(self):
        """E = proj2(proj1(g) + g), g = RGCN(node_embeds) + node_embeds: (N, H)."""
        g = self.kg_encoder(self.node_embeds) + self.node_embeds
        return self.entity_proj2(self.entity_proj1(g) + g)

    def emotion_table(self):
        m = self.emo_embeds
        return self.emo_proj2(self.emo_proj1(m) + m)

    def rows(self, E, M, tokens, entities, emotion_ids=None, emotion_probs=None, global_rows=None):
        """One dialog's prompt rows before prompt_proj (prefix rows first): tokens (n, T) text
        encoder states, entities (L,) ids; rec with emotions: (L, 3) ids / probs and the global
        rows G[e] (L, H), or None for the prompt without emotions."""
        t = self.token_proj2(self.token_proj1(tokens) + tokens)
        if self.kind == "rec":
            q = self.rec_prefix_proj(self.rec_prefix_embeds) + self.rec_prefix_embeds
            if len(entities) == 0:
                return q
            ek = E[entities]
            a = self.cross_attn(t) @ ek.T / self.hidden
            p = a.softmax(0).T @ t + ek
            if emotion_ids is not None:
                mu = (M[emotion_ids] * emotion_probs[..., None]).sum(1)
                if global_rows is not None:
                    p, mu = torch.cat([p, global_rows]), torch.cat([mu, mu])
                p = self.emo_fuse_proj2(self.emo_fuse_proj1(torch.cat([p, mu], -1)))
            return torch.cat([q, p])
        q = self.conv_prefix_proj(self.conv_prefix_embeds) + self.conv_prefix_embeds
        p = t
        if len(entities):
            ek = E[entities]
            p = (self.cross_attn(t) @ ek.T / self.hidden).softmax(1) @ ek + t
        return torch.cat([q, p])

    def project(self, rows):
        """(B, S, H) -> (B, S, n_layer*2*H): the per-layer prefix keys and values."""
        return self.prompt_proj2(self.prompt_proj1(rows) + rows)
