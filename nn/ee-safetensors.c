/* gst-earlyexit: safetensors model files, mapped read-only and validated.
 *
 * The whole header is checked before a single tensor is handed out, so the rest
 * of the runtime may trust every EeStTensor: its bytes lie inside the mapping,
 * its size equals dtype size x element count, and it overlaps no other tensor.
 *
 * The JSON is parsed by json-glib, but json-glib 1.6 is lenient where a model
 * file must not be: it wraps integers beyond 64 bits (99999999999999999999
 * reads as -1, which could turn a bad shape into a plausible one), accepts
 * single quotes, comments, hexadecimal and leading zeros, recurses without
 * limit on nested arrays (a stack overflow on "[[[[..."), and keeps the last of
 * duplicate members. So a strict lexical pass (RFC 8259 tokens, integer range,
 * nesting depth) runs first, and duplicates are caught through the parser's
 * "object-member" signal. */
#include "ee-safetensors.h"

#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

/* The reference implementation's limit too: no real header comes near it, and
 * it bounds what a corrupt length field can make us allocate. */
#define HEADER_MAX_BYTES 100000000u
/* A valid header nests three deep (root, entry, shape); the limit only keeps
 * json-glib's recursive parser off the end of the stack. */
#define JSON_MAX_DEPTH 64
#define METADATA_KEY "__metadata__"

struct _EeSafetensors
{
  char *path;          /* or the name given to new_from_data */
  GMappedFile *mapped; /* NULL for an in-memory image */
  EeStTensor *tensors; /* n_tensors, in data-offset order */
  guint n_tensors;
  GHashTable *by_name;  /* name (owned by tensors) -> EeStTensor * */
  GHashTable *metadata; /* owned key -> owned value */
};

/* Every dtype the safetensors format defines, so that a file using one we do
 * not compute with is still checked in full and then refused as unsupported
 * (not as malformed). */
static const struct
{
  const char *name;
  guint size;
  gboolean supported;
  EeDType dtype;
} dtypes[] = {
  { "F32", 4, TRUE, EE_DTYPE_F32 },
  { "F16", 2, TRUE, EE_DTYPE_F16 },
  { "BF16", 2, TRUE, EE_DTYPE_BF16 },
  { "F64", 8, FALSE },
  { "I64", 8, FALSE },
  { "U64", 8, FALSE },
  { "C64", 8, FALSE },
  { "I32", 4, FALSE },
  { "U32", 4, FALSE },
  { "I16", 2, FALSE },
  { "U16", 2, FALSE },
  { "I8", 1, FALSE },
  { "U8", 1, FALSE },
  { "BOOL", 1, FALSE },
  { "F8_E4M3", 1, FALSE },
  { "F8_E5M2", 1, FALSE },
  { "F8_E8M0", 1, FALSE },
};

/* A tensor while the header is checked. */
typedef struct
{
  const char *name; /* inside the JSON tree */
  guint dtype_index;
  int ndim;
  int64_t shape[EE_ST_MAX_DIMS];
  int64_t numel;
  guint64 begin, end;
} Entry;

/* Catches the first member name that repeats within one object. The signal
 * comes after json-glib has stored the member, so an object whose size did not
 * grow has just had a member replaced. */
typedef struct
{
  GHashTable *sizes; /* JsonObject * -> size after its last member */
  JsonObject *object;
  char *name;
} DupWatch;

static void
on_object_member (JsonParser *parser, JsonObject *object, const char *name,
                  gpointer user_data)
{
  DupWatch *w = user_data;
  guint size = json_object_get_size (object);

  /* Objects are only freed once a duplicate has replaced one, so until the
   * first duplicate no address in the table can have been reused. */
  if (w->name)
    return;
  if (GPOINTER_TO_UINT (g_hash_table_lookup (w->sizes, object)) == size) {
    w->object = object;
    w->name = g_strdup (name);
    return;
  }
  g_hash_table_insert (w->sizes, object, GUINT_TO_POINTER (size));
}

static gboolean
is_delimiter (const char *s, size_t n, size_t i)
{
  return i == n || strchr (" \t\n\r,]}:", s[i]) != NULL;
}

static int
hex4 (const char *s, size_t n, size_t i)
{
  int v = 0;

  if (n - i < 4)
    return -1;
  for (int k = 0; k < 4; k++) {
    int d = g_ascii_xdigit_value (s[i + k]);
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Skips the string starting at s[*i] == '"'. NUL is refused because json-glib
 * hands out C strings: "a\u0000b" would silently become "a". */
static const char *
lex_string (const char *s, size_t n, size_t *i)
{
  size_t k = *i + 1;

  while (k < n) {
    guchar c = s[k];
    if (c == '"') {
      *i = k + 1;
      return NULL;
    }
    if (c < 0x20)
      return "control character in a string";
    if (c != '\\') {
      k++;
      continue;
    }
    if (++k == n)
      break;
    if (strchr ("\"\\/bfnrt", s[k])) {
      k++;
      continue;
    }
    if (s[k] != 'u')
      return "invalid escape in a string";
    int u = hex4 (s, n, k + 1);
    if (u < 0)
      return "invalid \\u escape in a string";
    if (u == 0)
      return "\\u0000 in a string";
    k += 5;
    if (u >= 0xdc00 && u <= 0xdfff)
      return "unpaired UTF-16 surrogate in a string";
    if (u >= 0xd800 && u <= 0xdbff) {
      int lo = (n - k >= 2 && s[k] == '\\' && s[k + 1] == 'u')
                   ? hex4 (s, n, k + 2)
                   : -1;
      if (lo < 0xdc00 || lo > 0xdfff)
        return "unpaired UTF-16 surrogate in a string";
      k += 6;
    }
  }
  return "unterminated string";
}

/* Skips the number starting at s[*i]: JSON's grammar, and an integer (no
 * fraction, no exponent) must fit in int64 since json-glib would wrap it. */
static const char *
lex_number (const char *s, size_t n, size_t *i)
{
  size_t k = *i;
  guint64 mag = 0;
  gboolean too_big = FALSE, integer = TRUE;

  if (s[k] == '-')
    k++;
  if (k == n || !g_ascii_isdigit (s[k]))
    return "invalid number";
  if (s[k] == '0' && k + 1 < n && g_ascii_isdigit (s[k + 1]))
    return "number with a leading zero";
  for (; k < n && g_ascii_isdigit (s[k]); k++) {
    guint d = s[k] - '0';
    if (mag > ((guint64)G_MAXINT64 - d) / 10)
      too_big = TRUE;
    else
      mag = mag * 10 + d;
  }
  if (k < n && s[k] == '.') {
    integer = FALSE;
    if (++k == n || !g_ascii_isdigit (s[k]))
      return "invalid number";
    while (k < n && g_ascii_isdigit (s[k]))
      k++;
  }
  if (k < n && (s[k] == 'e' || s[k] == 'E')) {
    integer = FALSE;
    if (++k < n && (s[k] == '+' || s[k] == '-'))
      k++;
    if (k == n || !g_ascii_isdigit (s[k]))
      return "invalid number";
    while (k < n && g_ascii_isdigit (s[k]))
      k++;
  }
  if (integer && too_big)
    return "integer outside the 64-bit range";
  *i = k;
  return NULL;
}

/* The lexical half of RFC 8259 plus a nesting limit; the grammar is left to
 * json-glib, which is strict about it. */
static gboolean
json_lex_check (const char *file, const char *s, size_t n, GError **error)
{
  size_t i = 0, start = 0;
  int depth = 0;
  gboolean done = FALSE; /* the top-level value is complete */
  const char *why = NULL;

  while (i < n && !why) {
    gboolean scalar = TRUE; /* a number or a word, which needs a delimiter */
    start = i;
    if (strchr (" \t\n\r", s[i])) {
      i++;
      continue;
    }
    /* json-glib parses "{...}{...}" as a sequence of documents and keeps the
     * last (leaking the others): a header must be exactly one value. */
    if (done) {
      why = "text after the JSON value";
      break;
    }
    switch (s[i]) {
      case ',':
      case ':':
        i++;
        continue;
      case '{':
      case '[':
        if (++depth > JSON_MAX_DEPTH)
          why = "nested too deep";
        i++;
        continue;
      case '}':
      case ']':
        done = --depth <= 0;
        i++;
        continue;
      case '"':
        why = lex_string (s, n, &i);
        scalar = FALSE;
        break;
      case 't':
      case 'f':
      case 'n': {
        const char *words[] = { "true", "false", "null" };
        const char *w = words[s[i] == 't' ? 0 : s[i] == 'f' ? 1 : 2];
        size_t len = strlen (w);
        if (n - i < len || memcmp (s + i, w, len) != 0)
          why = "unexpected word";
        else
          i += len;
        break;
      }
      default:
        if (s[i] == '-' || g_ascii_isdigit (s[i]))
          why = lex_number (s, n, &i);
        else
          why = "unexpected character";
        break;
    }
    if (!why && scalar && !is_delimiter (s, n, i))
      why = "unexpected character after a value";
    done = depth <= 0;
  }
  if (why) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: JSON header byte %zu: %s", file, start, why);
    return FALSE;
  }
  return TRUE;
}

static char *
shape_str (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* A JSON integer as int64, refusing doubles, booleans and strings (which
 * json_node_get_int would convert). */
static gboolean
node_int (JsonNode *node, int64_t *out)
{
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
parse_dtype (const char *file, Entry *e, JsonNode *node, GError **error)
{
  const char *name;

  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"dtype\" is not a string", file, e->name);
    return FALSE;
  }
  name = json_node_get_string (node);
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++) {
    if (strcmp (name, dtypes[i].name) == 0) {
      e->dtype_index = i;
      return TRUE;
    }
  }
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "%s: tensor \"%s\": unknown dtype \"%s\"", file, e->name, name);
  return FALSE;
}

static gboolean
parse_shape (const char *file, Entry *e, JsonNode *node, GError **error)
{
  JsonArray *a;
  guint len;
  gboolean has_zero = FALSE;

  if (!JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"shape\" is not an array", file, e->name);
    return FALSE;
  }
  a = json_node_get_array (node);
  len = json_array_get_length (a);
  if (len > EE_ST_MAX_DIMS) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"shape\" has %u dimensions, at most %d "
                 "are supported",
                 file, e->name, len, EE_ST_MAX_DIMS);
    return FALSE;
  }
  e->ndim = len;
  for (guint i = 0; i < len; i++) {
    if (!node_int (json_array_get_element (a, i), &e->shape[i])) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\": \"shape\"[%u] is not an integer", file,
                   e->name, i);
      return FALSE;
    }
    if (e->shape[i] < 0) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_FORMAT,
          "%s: tensor \"%s\": \"shape\"[%u] is negative (%" G_GINT64_FORMAT ")",
          file, e->name, i, e->shape[i]);
      return FALSE;
    }
    has_zero |= e->shape[i] == 0;
  }
  /* An empty tensor has no elements however large its other dimensions. */
  e->numel = has_zero ? 0 : 1;
  for (int i = 0; i < e->ndim && !has_zero; i++) {
    if (e->numel > G_MAXINT64 / e->shape[i]) {
      char *s = shape_str (e->ndim, e->shape);
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\": \"shape\" %s has more elements than fit "
                   "in 64 bits",
                   file, e->name, s);
      g_free (s);
      return FALSE;
    }
    e->numel *= e->shape[i];
  }
  return TRUE;
}

static gboolean
parse_offsets (const char *file, Entry *e, JsonNode *node, guint64 data_len,
               GError **error)
{
  JsonArray *a
      = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  int64_t v[2];
  guint64 size = dtypes[e->dtype_index].size, need;
  gboolean overflow;

  if (!a || json_array_get_length (a) != 2
      || !node_int (json_array_get_element (a, 0), &v[0])
      || !node_int (json_array_get_element (a, 1), &v[1])) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "%s: tensor \"%s\": \"data_offsets\" is not an array of two integers",
        file, e->name);
    return FALSE;
  }
  if (v[0] < 0 || v[1] < 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"data_offsets\" [%" G_GINT64_FORMAT
                 ", %" G_GINT64_FORMAT "] has a negative offset",
                 file, e->name, v[0], v[1]);
    return FALSE;
  }
  e->begin = v[0];
  e->end = v[1];
  if (e->begin > e->end) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"data_offsets\" [%" G_GUINT64_FORMAT
                 ", %" G_GUINT64_FORMAT "] begins after it ends",
                 file, e->name, e->begin, e->end);
    return FALSE;
  }
  if (e->end > data_len) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": \"data_offsets\" [%" G_GUINT64_FORMAT
                 ", %" G_GUINT64_FORMAT "] ends beyond the %" G_GUINT64_FORMAT
                 "-byte data section",
                 file, e->name, e->begin, e->end, data_len);
    return FALSE;
  }
  /* A byte count beyond 2^63 cannot match any offsets; it is only named. */
  overflow = e->numel > G_MAXINT64 / (int64_t)size;
  need = overflow ? 0 : (guint64)e->numel * size;
  if (overflow || e->end - e->begin != need) {
    char *s = shape_str (e->ndim, e->shape);
    char *need_str = overflow ? g_strdup ("more than 2^63")
                              : g_strdup_printf ("%" G_GUINT64_FORMAT, need);
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": data_offsets [%" G_GUINT64_FORMAT
                 ", %" G_GUINT64_FORMAT "] give %" G_GUINT64_FORMAT
                 " bytes but %s %s needs %s",
                 file, e->name, e->begin, e->end, e->end - e->begin,
                 dtypes[e->dtype_index].name, s, need_str);
    g_free (need_str);
    g_free (s);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_entry (const char *file, Entry *e, JsonNode *node, guint64 data_len,
             GError **error)
{
  static const char *members[] = { "dtype", "shape", "data_offsets" };
  JsonObject *o;
  GList *names;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\": entry is not an object", file, e->name);
    return FALSE;
  }
  o = json_node_get_object (node);
  for (guint i = 0; i < G_N_ELEMENTS (members); i++) {
    if (!json_object_has_member (o, members[i])) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\": missing \"%s\"", file, e->name,
                   members[i]);
      return FALSE;
    }
  }
  /* All three are present, so a fourth member is one too many. */
  names = json_object_get_members (o);
  for (GList *l = names; l; l = l->next) {
    const char *m = l->data;
    if (strcmp (m, "dtype") && strcmp (m, "shape")
        && strcmp (m, "data_offsets")) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\": unexpected member \"%s\"", file, e->name,
                   m);
      g_list_free (names);
      return FALSE;
    }
  }
  g_list_free (names);
  return parse_dtype (file, e, json_object_get_member (o, "dtype"), error)
         && parse_shape (file, e, json_object_get_member (o, "shape"), error)
         && parse_offsets (file, e, json_object_get_member (o, "data_offsets"),
                           data_len, error);
}

static gboolean
parse_metadata (EeSafetensors *st, JsonNode *node, GError **error)
{
  JsonObject *o;
  GList *names;
  gboolean ok = TRUE;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: \"" METADATA_KEY "\" is not an object", st->path);
    return FALSE;
  }
  o = json_node_get_object (node);
  names = json_object_get_members (o);
  for (GList *l = names; l && ok; l = l->next) {
    JsonNode *v = json_object_get_member (o, l->data);
    if (!JSON_NODE_HOLDS_VALUE (v)
        || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: \"" METADATA_KEY "\" value of \"%s\" is not a string",
                   st->path, (const char *)l->data);
      ok = FALSE;
    } else {
      g_hash_table_insert (st->metadata, g_strdup (l->data),
                           g_strdup (json_node_get_string (v)));
    }
  }
  g_list_free (names);
  return ok;
}

/* Names the object a duplicate member was found in. */
static void
set_duplicate_error (EeSafetensors *st, JsonObject *root, const DupWatch *w,
                     GError **error)
{
  GList *names;

  if (w->object == root && strcmp (w->name, METADATA_KEY) == 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: \"" METADATA_KEY "\" appears twice in the header",
                 st->path);
    return;
  }
  if (w->object == root) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\" appears twice in the header", st->path,
                 w->name);
    return;
  }
  names = json_object_get_members (root);
  for (GList *l = names; l; l = l->next) {
    JsonNode *node = json_object_get_member (root, l->data);
    if (!JSON_NODE_HOLDS_OBJECT (node)
        || json_node_get_object (node) != w->object)
      continue;
    if (strcmp (l->data, METADATA_KEY) == 0)
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: \"" METADATA_KEY "\" key \"%s\" appears twice",
                   st->path, w->name);
    else
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\": member \"%s\" appears twice", st->path,
                   (const char *)l->data, w->name);
    g_list_free (names);
    return;
  }
  g_list_free (names);
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "%s: JSON header: member \"%s\" appears twice", st->path,
               w->name);
}

static int
entry_cmp (gconstpointer pa, gconstpointer pb)
{
  const Entry *a = pa, *b = pb;

  if (a->begin != b->begin)
    return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end)
    return a->end < b->end ? -1 : 1;
  return strcmp (a->name, b->name);
}

/* Checks the entries against each other and fills st->tensors. */
static gboolean
finish_tensors (EeSafetensors *st, Entry *entries, guint n,
                const guint8 *data_section, GError **error)
{
  const Entry *prev = NULL, *unsupported = NULL;

  qsort (entries, n, sizeof (Entry), entry_cmp);
  for (guint i = 0; i < n; i++) {
    const Entry *e = &entries[i];
    /* Sorted by begin, pairwise disjoint non-empty ranges also have increasing
     * ends, so comparing with the previous non-empty one is enough. Empty
     * tensors hold no bytes and overlap nothing. */
    if (e->end == e->begin)
      continue;
    if (prev && e->begin < prev->end) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensors \"%s\" (data_offsets [%" G_GUINT64_FORMAT
                   ", %" G_GUINT64_FORMAT
                   "]) and \"%s\" (data_offsets [%" G_GUINT64_FORMAT
                   ", %" G_GUINT64_FORMAT "]) overlap",
                   st->path, prev->name, prev->begin, prev->end, e->name,
                   e->begin, e->end);
      return FALSE;
    }
    prev = e;
  }
  /* Unsupported dtypes are reported last: a file that is malformed as well
   * should be reported as malformed. */
  for (guint i = 0; i < n && !unsupported; i++)
    if (!dtypes[entries[i].dtype_index].supported)
      unsupported = &entries[i];
  if (unsupported) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: tensor \"%s\": dtype %s is not supported (only F32, F16 "
                 "and BF16 are)",
                 st->path, unsupported->name,
                 dtypes[unsupported->dtype_index].name);
    return FALSE;
  }

  st->tensors = g_new0 (EeStTensor, MAX (n, 1));
  st->n_tensors = n;
  for (guint i = 0; i < n; i++) {
    const Entry *e = &entries[i];
    EeStTensor *t = &st->tensors[i];
    t->name = g_strdup (e->name);
    t->dtype = dtypes[e->dtype_index].dtype;
    t->ndim = e->ndim;
    memcpy (t->shape, e->shape, sizeof (e->shape));
    t->numel = e->numel;
    t->data = data_section + e->begin;
    t->nbytes = e->end - e->begin;
    g_hash_table_insert (st->by_name, (char *)t->name, t);
  }
  return TRUE;
}

static gboolean
parse_header (EeSafetensors *st, const char *json, size_t json_len,
              const guint8 *data_section, guint64 data_len, GError **error)
{
  JsonParser *parser = json_parser_new ();
  DupWatch w = { g_hash_table_new (NULL, NULL), NULL, NULL };
  GError *err = NULL;
  JsonNode *root_node;
  JsonObject *root;
  GList *names = NULL;
  Entry *entries = NULL;
  guint n = 0;
  gboolean ok = FALSE;

  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &w);
  if (!json_parser_load_from_data (parser, json, json_len, &err)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: JSON header: %s",
                 st->path, err->message);
    g_error_free (err);
    goto out;
  }
  root_node = json_parser_get_root (parser);
  if (!root_node || !JSON_NODE_HOLDS_OBJECT (root_node)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: JSON header is not an object", st->path);
    goto out;
  }
  root = json_node_get_object (root_node);
  if (w.name) {
    set_duplicate_error (st, root, &w, error);
    goto out;
  }

  names = json_object_get_members (root);
  entries = g_new0 (Entry, MAX (json_object_get_size (root), 1));
  for (GList *l = names; l; l = l->next) {
    JsonNode *node = json_object_get_member (root, l->data);
    if (strcmp (l->data, METADATA_KEY) == 0) {
      if (!parse_metadata (st, node, error))
        goto out;
      continue;
    }
    entries[n].name = l->data;
    if (!parse_entry (st->path, &entries[n], node, data_len, error))
      goto out;
    n++;
  }
  ok = finish_tensors (st, entries, n, data_section, error);

out:
  g_free (entries);
  g_list_free (names);
  g_free (w.name);
  g_hash_table_unref (w.sizes);
  g_object_unref (parser);
  return ok;
}

static gboolean
load (EeSafetensors *st, const guint8 *data, gsize len, GError **error)
{
  guint64 header_len = 0;
  const char *text = (const char *)data + 8;
  char *json;
  gboolean ok;

  if (len < 8) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: %" G_GSIZE_FORMAT
                 " bytes is too short for the 8-byte header length",
                 st->path, len);
    return FALSE;
  }
  for (int i = 7; i >= 0; i--)
    header_len = header_len << 8 | data[i];
  /* Compared with what follows the length field rather than adding 8 to it,
   * which a length near 2^64 would wrap. */
  if (header_len > len - 8) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: header length %" G_GUINT64_FORMAT
                 " exceeds the %" G_GSIZE_FORMAT
                 " bytes after the length field",
                 st->path, header_len, len - 8);
    return FALSE;
  }
  if (header_len > HEADER_MAX_BYTES) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: header length %" G_GUINT64_FORMAT
                 " exceeds the limit of %u bytes",
                 st->path, header_len, HEADER_MAX_BYTES);
    return FALSE;
  }
  if (!g_utf8_validate (text, header_len, NULL)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: JSON header is not valid UTF-8 (or contains NUL)",
                 st->path);
    return FALSE;
  }
  if (!json_lex_check (st->path, text, header_len, error))
    return FALSE;
  /* A terminated copy: json-glib's scanner is safest on a C string. */
  json = g_strndup (text, header_len);
  ok = parse_header (st, json, header_len, data + 8 + header_len,
                     len - 8 - header_len, error);
  g_free (json);
  return ok;
}

static EeSafetensors *
safetensors_new (const char *path)
{
  EeSafetensors *st = g_new0 (EeSafetensors, 1);

  st->path = g_strdup (path);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return st;
}

EeSafetensors *
ee_safetensors_new_from_data (const guint8 *data, gsize len, const char *name,
                              GError **error)
{
  EeSafetensors *st;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  st = safetensors_new (name ? name : "<memory>");
  if (!load (st, data, len, error)) {
    ee_safetensors_free (st);
    return NULL;
  }
  return st;
}

EeSafetensors *
ee_safetensors_open (const char *path, GError **error)
{
  EeSafetensors *st;
  GError *err = NULL;
  GMappedFile *mapped = g_mapped_file_new (path, FALSE, &err);

  if (!mapped) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE, "%s", err->message);
    g_error_free (err);
    return NULL;
  }
  st = safetensors_new (path);
  st->mapped = mapped;
  /* An empty file maps to NULL contents, which load() rejects as too short. */
  if (!load (st, (const guint8 *)g_mapped_file_get_contents (mapped),
             g_mapped_file_get_length (mapped), error)) {
    ee_safetensors_free (st);
    return NULL;
  }
  return st;
}

void
ee_safetensors_free (EeSafetensors *st)
{
  if (!st)
    return;
  for (guint i = 0; i < st->n_tensors; i++)
    g_free ((char *)st->tensors[i].name);
  g_free (st->tensors);
  g_hash_table_unref (st->by_name);
  g_hash_table_unref (st->metadata);
  if (st->mapped)
    g_mapped_file_unref (st->mapped);
  g_free (st->path);
  g_free (st);
}

const char *
ee_safetensors_path (const EeSafetensors *st)
{
  return st->path;
}

guint
ee_safetensors_n_tensors (const EeSafetensors *st)
{
  return st->n_tensors;
}

const EeStTensor *
ee_safetensors_tensor (const EeSafetensors *st, guint i)
{
  g_return_val_if_fail (i < st->n_tensors, NULL);
  return &st->tensors[i];
}

const EeStTensor *
ee_safetensors_find (const EeSafetensors *st, const char *name)
{
  return g_hash_table_lookup (st->by_name, name);
}

const char *
ee_safetensors_metadata (const EeSafetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

static int
str_ptr_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

const char **
ee_safetensors_metadata_keys (const EeSafetensors *st)
{
  guint n;
  const char **keys
      = (const char **)g_hash_table_get_keys_as_array (st->metadata, &n);

  qsort (keys, n, sizeof (char *), str_ptr_cmp);
  return keys;
}

/* IEEE binary16 to binary32; exact, since every half is a float. */
static float
f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32)(h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f;
  guint32 mant = h & 0x3ff;
  guint32 bits;
  float f;

  if (exp == 0x1f) {
    /* Infinity, or NaN with its payload kept. */
    bits = sign | 0x7f800000 | mant << 13;
  } else if (exp != 0) {
    /* Rebias the exponent from 15 to 127. */
    bits = sign | (exp + 112) << 23 | mant << 13;
  } else if (mant == 0) {
    bits = sign;
  } else {
    /* Subnormal half (mant x 2^-24), a normal float: shift the leading one
     * into the implicit bit, lowering the exponent by one per shift. */
    int shift = 0;
    while (!(mant & 0x400)) {
      mant <<= 1;
      shift++;
    }
    bits = sign | (guint32)(113 - shift) << 23 | (mant & 0x3ff) << 13;
  }
  memcpy (&f, &bits, sizeof f);
  return f;
}

void
ee_st_tensor_to_f32 (const EeStTensor *t, float *dst)
{
  /* The data sits at any offset in the mapping: read through memcpy. */
  const guint8 *src = t->data;

  for (int64_t i = 0; i < t->numel; i++) {
    guint32 bits;
    guint16 h;
    switch (t->dtype) {
      case EE_DTYPE_F32:
        memcpy (&bits, src + 4 * i, 4);
        bits = GUINT32_FROM_LE (bits);
        break;
      case EE_DTYPE_F16:
        memcpy (&h, src + 2 * i, 2);
        dst[i] = f16_to_f32 (GUINT16_FROM_LE (h));
        continue;
      case EE_DTYPE_BF16:
        /* bfloat16 is the upper half of a float. */
        memcpy (&h, src + 2 * i, 2);
        bits = (guint32)GUINT16_FROM_LE (h) << 16;
        break;
      default:
        g_return_if_reached ();
    }
    memcpy (&dst[i], &bits, 4);
  }
}

const EeStTensor *
ee_safetensors_get_checked (const EeSafetensors *st, const char *name, int ndim,
                            const int64_t *shape, GError **error)
{
  const EeStTensor *t;
  gboolean same;

  if (ndim < 0 || ndim > EE_ST_MAX_DIMS) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: tensor \"%s\": %d dimensions asked for, at most %d possible",
        st->path, name, ndim, EE_ST_MAX_DIMS);
    return NULL;
  }
  t = ee_safetensors_find (st, name);
  if (!t) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\" is missing; regenerate the file with the "
                 "converter under models/convert/",
                 st->path, name);
    return NULL;
  }
  same = t->ndim == ndim;
  for (int i = 0; i < ndim && same; i++)
    same = t->shape[i] == shape[i];
  if (!same) {
    char *got = shape_str (t->ndim, t->shape);
    char *want = shape_str (ndim, shape);
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: tensor \"%s\" has shape %s, expected %s; regenerate the "
                 "file with the converter under models/convert/",
                 st->path, name, got, want);
    g_free (got);
    g_free (want);
    return NULL;
  }
  return t;
}
