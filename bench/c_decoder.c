/* A plain single-file C decoder for llama2.c-format checkpoints, written the way a competent
 * person writes one by hand (the style of llama2.c's run.c): f32 weights mmap'd as stored, scalar
 * loops that the compiler vectorises (-Ofast -march=native), `#pragma omp parallel for` over the
 * rows of every matmul and over the heads of attention, llama2.c's interleaved-pair rope, a KV
 * cache, SwiGLU, and a greedy argmax. It is the baseline kforge's decoder is measured against
 * (bench_infer runs it in alternation with kforge's libraries), so it stays plain: no tuning here.
 *
 *   c_decoder [--int8] CHECKPOINT STEPS
 *
 * With --int8 it is the int8 sibling (the style of llama2.c's runq.c): at load every projection
 * and the classifier are quantised in groups of 32 weights (the grouping of ggml's Q8_0), each
 * group an f32 scale max|w| / 127 and int8 values round(w / scale); every matmul quantises its
 * input vector the same way and sums, per group, the int32 dot of the int8 pairs times both
 * scales. The embedding and the norms stay f32. The quantisation at load is not timed.
 *
 * It feeds <s> (token 1) at position 0, then STEPS greedy steps, and prints
 *   tokens: T0 T1 ... TSTEPS          (the greedy token after <s>, then one per step)
 *   decode: STEPS steps in S s, R tokens/s
 * where S is the wall time of the STEPS steps (the <s> step, which also faults the weights in, is
 * not timed), the way bench_infer times kforge's decoder.
 *
 * The checkpoint: a header of seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size negative when the classifier is stored after the weights instead
 * of shared with the embedding), then float32 tensors in llama2.c's order. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared_classifier;
  int head_size, kv_dim;
} Config;

enum { GS = 32 }; /* --int8: the weights and activations per f32 scale */

/* A matrix of rows of n weights: f32 as mapped, or (--int8) int8 with one scale per GS weights. */
typedef struct {
  const float* f;
  const int8_t* q;
  const float* s;
} Matrix;

typedef struct {
  const float *embedding, *rms_att, *rms_ffn, *rms_final;
  Matrix wq, wk, wv, wo, w1, w2, w3, wcls;
} Weights;

typedef struct {
  float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *key_cache, *value_cache;
  int8_t* xq; /* --int8: a matmul's input vector quantised, with its scales in xs */
  float* xs;
} State;

typedef struct {
  Config c;
  Weights w;
  State s;
  void* map;
  size_t map_bytes;
} Model;

static void die(const char* path, const char* what) {
  fprintf(stderr, "c_decoder: %s: %s\n", path, what);
  exit(1);
}

/* The header checked against itself and against the file's size (exactly what its tensors need). */
static void read_config(Config* c, const int32_t h[7], const char* path, size_t file_bytes) {
  for (int i = 0; i < 7; ++i) {
    const int64_t size = i == 5 ? llabs((int64_t)h[i]) : h[i]; /* vocab_size carries the sign */
    if (size < 1 || size > (1 << 22)) die(path, "not a llama2.c checkpoint: a header size is out of range");
  }
  c->dim = h[0], c->hidden = h[1], c->layers = h[2], c->heads = h[3], c->kv_heads = h[4];
  c->shared_classifier = h[5] > 0;
  c->vocab = abs(h[5]), c->seq_len = h[6];
  if (c->dim % c->heads || c->heads % c->kv_heads || (c->dim / c->heads) % 2)
    die(path, "not a llama2.c checkpoint: dim, n_heads and n_kv_heads do not divide into even heads");
  c->head_size = c->dim / c->heads;
  c->kv_dim = c->kv_heads * c->head_size;
  const int64_t d = c->dim, hd = c->hidden, l = c->layers, v = c->vocab, kv = c->kv_dim;
  const int64_t floats = v * d + l * (2 * d + 2 * d * d + 2 * kv * d + 3 * hd * d) + d +
                         (int64_t)c->seq_len * c->head_size + (c->shared_classifier ? 0 : v * d);
  if ((int64_t)file_bytes != 28 + 4 * floats)
    die(path, "its size does not match its header (truncated, or not a checkpoint)");
}

/* Pointers into the mapped floats, in the file's order. */
static void map_weights(Weights* w, const Config* c, const float* p) {
  const int64_t d = c->dim, hd = c->hidden, l = c->layers, kv = c->kv_dim;
  w->embedding = p, p += (int64_t)c->vocab * d;
  w->rms_att = p, p += l * d;
  w->wq.f = p, p += l * d * d;
  w->wk.f = p, p += l * kv * d;
  w->wv.f = p, p += l * kv * d;
  w->wo.f = p, p += l * d * d;
  w->rms_ffn = p, p += l * d;
  w->w1.f = p, p += l * hd * d;
  w->w2.f = p, p += l * d * hd;
  w->w3.f = p, p += l * hd * d;
  w->rms_final = p, p += d;
  p += (int64_t)c->seq_len * c->head_size; /* freq_cis_real and _imag: rope is computed instead */
  w->wcls.f = c->shared_classifier ? w->embedding : p;
}

static float* zeros(size_t n) {
  float* p = calloc(n, sizeof(float));
  if (!p) die("c_decoder", "out of memory");
  return p;
}

static void* allocate(size_t bytes) {
  void* p = malloc(bytes);
  if (!p) die("c_decoder", "out of memory");
  return p;
}

/* n values (a multiple of GS) in groups of GS: scale[g] = max|x| / 127 over the group, q = the
 * values over their group's scale rounded to nearest (0 where the group is all zeros). */
static void quantize(int8_t* q, float* scale, const float* x, int64_t n) {
  for (int64_t g = 0; g < n / GS; ++g) {
    float amax = 0;
    for (int j = 0; j < GS; ++j) amax = fmaxf(amax, fabsf(x[g * GS + j]));
    const float s = amax / 127.0f, inverse = s != 0 ? 1.0f / s : 0;
#ifdef F16_SCALES
    scale[g] = (float)(_Float16)s; /* ggml's Q8_0 stores the scale as f16: see bench/CMakeLists.txt */
#else
    scale[g] = s;
#endif
    for (int j = 0; j < GS; ++j) q[g * GS + j] = (int8_t)roundf(x[g * GS + j] * inverse);
  }
}

/* --int8 at load: the rows x n f32 weights of w quantised into new memory. */
static void quantize_matrix(Matrix* w, int64_t rows, int n) {
  int8_t* q = allocate((size_t)(rows * n));
  float* s = allocate(sizeof(float) * (size_t)(rows * n / GS));
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) quantize(q + r * n, s + r * n / GS, w->f + r * n, n);
  w->f = NULL, w->q = q, w->s = s;
}

/* Rows of w from its element `offset` (a whole number of rows) on, in either format. */
static Matrix at(Matrix w, int64_t offset) {
  return (Matrix){w.f ? w.f + offset : NULL, w.q ? w.q + offset : NULL, w.s ? w.s + offset / GS : NULL};
}

static void open_model(Model* m, const char* path, int int8) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) die(path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) die(path, strerror(errno));
  int32_t header[7];
  if (st.st_size < (off_t)sizeof header || read(fd, header, sizeof header) != (ssize_t)sizeof header)
    die(path, "too short for a llama2.c checkpoint header");
  read_config(&m->c, header, path, (size_t)st.st_size);
  m->map_bytes = (size_t)st.st_size;
  m->map = mmap(NULL, m->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m->map == MAP_FAILED) die(path, strerror(errno));
  map_weights(&m->w, &m->c, (const float*)((const char*)m->map + sizeof header));
  const Config* c = &m->c;
  State* s = &m->s;
  s->x = zeros(c->dim), s->xb = zeros(c->dim), s->xb2 = zeros(c->dim), s->q = zeros(c->dim);
  s->hb = zeros(c->hidden), s->hb2 = zeros(c->hidden);
  s->att = zeros((size_t)c->heads * c->seq_len), s->logits = zeros(c->vocab);
  s->key_cache = zeros((size_t)c->layers * c->seq_len * c->kv_dim);
  s->value_cache = zeros((size_t)c->layers * c->seq_len * c->kv_dim);
  if (!int8) return;
  if (c->dim % GS || c->hidden % GS) die(path, "--int8 needs dim and hidden_dim in whole groups of 32");
  const int64_t d = c->dim, hd = c->hidden, l = c->layers, kv = c->kv_dim;
  Weights* w = &m->w;
  quantize_matrix(&w->wq, l * d, c->dim), quantize_matrix(&w->wk, l * kv, c->dim);
  quantize_matrix(&w->wv, l * kv, c->dim), quantize_matrix(&w->wo, l * d, c->dim);
  quantize_matrix(&w->w1, l * hd, c->dim), quantize_matrix(&w->w2, l * d, c->hidden);
  quantize_matrix(&w->w3, l * hd, c->dim), quantize_matrix(&w->wcls, c->vocab, c->dim);
  const size_t widest = (size_t)(c->hidden > c->dim ? c->hidden : c->dim); /* the longest input vector */
  s->xq = allocate(widest), s->xs = zeros(widest / GS);
}

static void rmsnorm(float* out, const float* x, const float* weight, int n) {
  float ss = 0;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  ss = 1.0f / sqrtf(ss / n + 1e-5f);
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (ss * x[i]);
}

static void softmax(float* x, int n) {
  float max = x[0], sum = 0;
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  for (int i = 0; i < n; ++i) sum += x[i] = expf(x[i] - max);
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

/* out (d) = W (d rows of n) @ x (n): one row per iteration, the rows split across the threads.
 * int8 W: x quantised first, then per group the int32 dot of the int8 pairs times both scales. */
static void matmul(State* s, float* out, const float* x, Matrix w, int n, int d) {
  if (w.f) {
#pragma omp parallel for
    for (int i = 0; i < d; ++i) {
      const float* row = w.f + (int64_t)i * n;
      float sum = 0;
      for (int j = 0; j < n; ++j) sum += row[j] * x[j];
      out[i] = sum;
    }
    return;
  }
  quantize(s->xq, s->xs, x, n);
#pragma omp parallel for
  for (int i = 0; i < d; ++i) {
    const int8_t* row = w.q + (int64_t)i * n;
    const float* scale = w.s + (int64_t)i * (n / GS);
    float sum = 0;
    for (int g = 0; g < n / GS; ++g) {
      int32_t dot = 0;
      for (int j = 0; j < GS; ++j) dot += (int32_t)row[g * GS + j] * (int32_t)s->xq[g * GS + j];
      sum += (float)dot * scale[g] * s->xs[g];
    }
    out[i] = sum;
  }
}

/* llama2.c's rope: each interleaved pair (2i, 2i+1) of every head of q, and of k where i < kv_dim,
 * rotated by pos * 10000^(-(2i mod head_size) / head_size). */
static void rope(float* q, float* k, const Config* c, int pos) {
  for (int i = 0; i < c->dim; i += 2) {
    const float freq = 1.0f / powf(10000.0f, (float)(i % c->head_size) / (float)c->head_size);
    const float angle = pos * freq, fcr = cosf(angle), fci = sinf(angle);
    for (int which = 0; which < (i < c->kv_dim ? 2 : 1); ++which) {
      float* v = which == 0 ? q : k;
      const float v0 = v[i], v1 = v[i + 1];
      v[i] = v0 * fcr - v1 * fci;
      v[i + 1] = v0 * fci + v1 * fcr;
    }
  }
}

/* Multi-head attention of q over the layer's cache up to pos into xb; query heads share a
 * key/value head in groups of heads / kv_heads. */
static void attention(Model* m, int layer, int pos) {
  const Config* c = &m->c;
  State* s = &m->s;
  const int group = c->heads / c->kv_heads, hs = c->head_size;
  const float* keys = s->key_cache + (int64_t)layer * c->seq_len * c->kv_dim;
  const float* values = s->value_cache + (int64_t)layer * c->seq_len * c->kv_dim;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for
  for (int h = 0; h < c->heads; ++h) {
    const float* q = s->q + h * hs;
    float* att = s->att + (int64_t)h * c->seq_len;
    const int kv_offset = (h / group) * hs;
    for (int t = 0; t <= pos; ++t) {
      const float* k = keys + (int64_t)t * c->kv_dim + kv_offset;
      float score = 0;
      for (int i = 0; i < hs; ++i) score += q[i] * k[i];
      att[t] = score * scale;
    }
    softmax(att, pos + 1);
    float* out = s->xb + h * hs;
    for (int i = 0; i < hs; ++i) out[i] = 0;
    for (int t = 0; t <= pos; ++t) {
      const float* v = values + (int64_t)t * c->kv_dim + kv_offset;
      for (int i = 0; i < hs; ++i) out[i] += att[t] * v[i];
    }
  }
}

/* One token at pos through every layer; the logits land in s->logits. */
static void forward(Model* m, int token, int pos) {
  const Config* c = &m->c;
  const Weights* w = &m->w;
  State* s = &m->s;
  const int d = c->dim, kv = c->kv_dim, hd = c->hidden;
  memcpy(s->x, w->embedding + (int64_t)token * d, sizeof(float) * d);
  for (int l = 0; l < c->layers; ++l) {
    rmsnorm(s->xb, s->x, w->rms_att + (int64_t)l * d, d);
    float* k = s->key_cache + ((int64_t)l * c->seq_len + pos) * kv;
    float* v = s->value_cache + ((int64_t)l * c->seq_len + pos) * kv;
    matmul(s, s->q, s->xb, at(w->wq, (int64_t)l * d * d), d, d);
    matmul(s, k, s->xb, at(w->wk, (int64_t)l * kv * d), d, kv);
    matmul(s, v, s->xb, at(w->wv, (int64_t)l * kv * d), d, kv);
    rope(s->q, k, c, pos);
    attention(m, l, pos);
    matmul(s, s->xb2, s->xb, at(w->wo, (int64_t)l * d * d), d, d);
    for (int i = 0; i < d; ++i) s->x[i] += s->xb2[i];
    rmsnorm(s->xb, s->x, w->rms_ffn + (int64_t)l * d, d);
    matmul(s, s->hb, s->xb, at(w->w1, (int64_t)l * hd * d), d, hd);
    matmul(s, s->hb2, s->xb, at(w->w3, (int64_t)l * hd * d), d, hd);
    for (int i = 0; i < hd; ++i) s->hb[i] = s->hb[i] / (1.0f + expf(-s->hb[i])) * s->hb2[i]; /* SwiGLU */
    matmul(s, s->xb, s->hb, at(w->w2, (int64_t)l * d * hd), hd, d);
    for (int i = 0; i < d; ++i) s->x[i] += s->xb[i];
  }
  rmsnorm(s->x, s->x, w->rms_final, d);
  matmul(s, s->logits, s->x, w->wcls, d, c->vocab);
}

static int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  const int int8 = argc > 1 && strcmp(argv[1], "--int8") == 0;
  argc -= int8, argv += int8;
  char* end = NULL;
  const long steps = argc == 3 ? strtol(argv[2], &end, 10) : 0;
  if (argc != 3 || *end != '\0' || steps < 1) {
    fprintf(stderr, "usage: c_decoder [--int8] CHECKPOINT STEPS (STEPS >= 1 greedy steps after <s>)\n");
    return 2;
  }
  Model m;
  open_model(&m, argv[1], int8);
  if (steps + 1 > m.c.seq_len) die(argv[1], "STEPS + 1 tokens do not fit in the model's context (seq_len)");
  int* tokens = malloc(sizeof(int) * (size_t)(steps + 1));
  if (!tokens) die("c_decoder", "out of memory");
  forward(&m, 1, 0); /* <s> */
  tokens[0] = argmax(m.s.logits, m.c.vocab);
  const double start = now();
  for (int pos = 1; pos <= steps; ++pos) {
    forward(&m, tokens[pos - 1], pos);
    tokens[pos] = argmax(m.s.logits, m.c.vocab);
  }
  const double seconds = now() - start;
  printf("tokens:");
  for (long i = 0; i <= steps; ++i) printf(" %d", tokens[i]);
  printf("\ndecode: %ld steps in %.6f s, %.3f tokens/s\n", steps, seconds, steps / seconds);
  return 0;
}
