// countdown-c@1: input {"steps":N,"step_ms":M} (defaults 10 and 100; no input runs both).
// Every step sleeps, then heartbeats its progress ({"step":3,"of":10}); stops with `canceled`
// as soon as the host says cancellation was requested; completes with {"done":N}.
//
// Input is read by the Rust countdown's rule (plugins/rust/countdown), as in the Python and
// JavaScript countdowns: no input or only JSON white space runs the defaults; else one JSON
// object with no keys but "steps" and "step_ms", each at most once, each an integer literal
// (no fraction or exponent, not negative, not null, true or a string), steps at most 2^32-1
// and step_ms at most 2^64-1 (the Rust countdown's u32 and u64). Anything else fails with
// reason BadInput.
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

// ---- A small JSON reader: enough to validate any input and pick out two integers --------

// The unread part of the input (WIT strings are pointer + length, not NUL-terminated).
typedef struct {
    const char *at, *end;
} cursor_t;

// Nesting deeper than this is refused rather than recursed into: a wasm stack is small.
enum { MAX_DEPTH = 128 };

static void skip_space(cursor_t *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r'))
        c->at++;
}

// Skips white space, then consumes `ch` if it comes next.
static bool eat(cursor_t *c, char ch) {
    skip_space(c);
    if (c->at < c->end && *c->at == ch) {
        c->at++;
        return true;
    }
    return false;
}

static bool eat_word(cursor_t *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->at) < n || memcmp(c->at, word, n) != 0) return false;
    c->at += n;
    return true;
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// A JSON string at c->at. When `out` is not NULL it gets the decoded text, NUL-terminated, or
// "" when that would not fit in `size` bytes; characters that no key here contains (NUL and
// escapes of non-ASCII ones) become the byte 0x80, so such a key matches none.
static bool read_string(cursor_t *c, char *out, size_t size) {
    size_t n = 0;
    if (c->at >= c->end || *c->at != '"') return false;
    c->at++;
    while (c->at < c->end) {
        unsigned char ch = (unsigned char)*c->at++;
        if (ch == '"') {
            if (out != NULL) out[n < size ? n : 0] = '\0';
            return true;
        }
        if (ch < 0x20) return false;  // control characters must be escaped
        if (ch == '\\') {
            if (c->at >= c->end) return false;
            switch (*c->at++) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned code = 0;
                for (int i = 0; i < 4; i++) {
                    int d = c->at < c->end ? hex_digit(*c->at++) : -1;
                    if (d < 0) return false;
                    code = code * 16 + (unsigned)d;
                }
                ch = code > 0 && code < 0x80 ? (unsigned char)code : 0x80;
                break;
            }
            default: return false;
            }
        } else if (ch == 0) {
            ch = 0x80;
        }
        if (out != NULL && n + 1 < size) out[n] = (char)ch;
        n++;
    }
    return false;
}

// What read_number found.
typedef enum {
    NOT_A_NUMBER,  // not JSON at all
    FITS,          // an integer without fraction, exponent or minus sign, at most `max`
    TOO_BIG,       // such an integer, above `max`
    NOT_INTEGER,   // another number: negative, with a fraction or an exponent
} number_t;

// A JSON number at c->at; when it FITS, *value holds it.
static number_t read_number(cursor_t *c, unsigned long long max, unsigned long long *value) {
    unsigned long long v = 0;
    bool negative = false, big = false, fraction = false;
    if (c->at < c->end && *c->at == '-') {
        c->at++;
        negative = true;
    }
    const char *digits = c->at;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
        unsigned d = (unsigned)(*c->at++ - '0');
        if (v > (max - d) / 10) big = true;
        else v = v * 10 + d;
    }
    if (c->at == digits || (*digits == '0' && c->at - digits > 1)) return NOT_A_NUMBER;
    if (c->at < c->end && *c->at == '.') {
        c->at++;
        fraction = true;
        if (c->at >= c->end || *c->at < '0' || *c->at > '9') return NOT_A_NUMBER;
        while (c->at < c->end && *c->at >= '0' && *c->at <= '9') c->at++;
    }
    if (c->at < c->end && (*c->at == 'e' || *c->at == 'E')) {
        c->at++;
        fraction = true;
        if (c->at < c->end && (*c->at == '+' || *c->at == '-')) c->at++;
        if (c->at >= c->end || *c->at < '0' || *c->at > '9') return NOT_A_NUMBER;
        while (c->at < c->end && *c->at >= '0' && *c->at <= '9') c->at++;
    }
    if (negative || fraction) return NOT_INTEGER;
    if (big) return TOO_BIG;
    *value = v;
    return FITS;
}

// Any JSON value, after white space: false when it is not valid JSON.
static bool skip_value(cursor_t *c, int depth) {
    skip_space(c);
    if (c->at >= c->end) return false;
    switch (*c->at) {
    case '"': return read_string(c, NULL, 0);
    case 't': return eat_word(c, "true");
    case 'f': return eat_word(c, "false");
    case 'n': return eat_word(c, "null");
    case '{':
    case '[': {
        char close = *c->at == '{' ? '}' : ']';
        c->at++;
        if (depth >= MAX_DEPTH) return false;
        if (eat(c, close)) return true;
        do {
            if (close == '}') {
                skip_space(c);
                if (!read_string(c, NULL, 0) || !eat(c, ':')) return false;
            }
            if (!skip_value(c, depth + 1)) return false;
        } while (eat(c, ','));
        return eat(c, close);
    }
    default: {
        unsigned long long ignored;
        return read_number(c, ULLONG_MAX, &ignored) != NOT_A_NUMBER;
    }
    }
}

// ---- The activity ------------------------------------------------------------------------

static const char *const NOT_JSON = "expected {\"steps\":N,\"step_ms\":M}: the input is not JSON";
static const char *const NOT_OBJECT = "expected a JSON object {\"steps\":N,\"step_ms\":M}";
static const char *const NOT_INTEGERS = "\"steps\" and \"step_ms\" must be non-negative integers";
static const char *const UNKNOWN_KEY = "unknown field, expected \"steps\" or \"step_ms\"";
static const char *const REPEATED_KEY = "\"steps\" and \"step_ms\" may appear once each";
static const char *const OUT_OF_RANGE =
    "\"steps\" must be at most 4294967295 and \"step_ms\" at most 18446744073709551615";

// Reads the input into fields[0] (steps) and fields[1] (step_ms), which hold the defaults;
// returns NULL, or the details of a BadInput failure: the first problem found, as serde
// reports the first one in the Rust countdown (which problem is named may differ; that the
// input fails does not).
static const char *read_input(const char *text, size_t len, unsigned long long fields[2]) {
    static const char *const names[2] = {"steps", "step_ms"};
    static const unsigned long long max[2] = {UINT32_MAX, ULLONG_MAX};
    cursor_t c = {text, text + len};
    skip_space(&c);
    if (c.at == c.end) return NULL;  // empty or blank input: the defaults
    if (*c.at != '{') {
        bool json = skip_value(&c, 0);
        skip_space(&c);
        return json && c.at == c.end ? NOT_OBJECT : NOT_JSON;
    }
    bool seen[2] = {false, false};
    c.at++;
    if (!eat(&c, '}')) {
        do {
            char key[8];
            skip_space(&c);
            if (!read_string(&c, key, sizeof key) || !eat(&c, ':')) return NOT_JSON;
            int f = strcmp(key, names[0]) == 0 ? 0 : strcmp(key, names[1]) == 0 ? 1 : -1;
            if (f < 0) return UNKNOWN_KEY;
            if (seen[f]) return REPEATED_KEY;
            seen[f] = true;
            skip_space(&c);
            if (c.at >= c.end || (*c.at != '-' && (*c.at < '0' || *c.at > '9'))) {
                // A string, true, null, an array...: not an integer, if it is JSON at all.
                return skip_value(&c, 1) ? NOT_INTEGERS : NOT_JSON;
            }
            switch (read_number(&c, max[f], &fields[f])) {
            case NOT_A_NUMBER: return NOT_JSON;
            case FITS: break;
            case TOO_BIG: return OUT_OF_RANGE;
            case NOT_INTEGER: return NOT_INTEGERS;
            }
        } while (eat(&c, ','));
        if (!eat(&c, '}')) return NOT_JSON;
    }
    skip_space(&c);
    if (c.at != c.end) return NOT_JSON;  // something after the object
    return NULL;
}

static bool fail(exports_swasm_activity_activity_activity_error_t *err, const char *details) {
    fprintf(stderr, "countdown-c: bad input: %s\n", details);
    err->tag = SWASM_ACTIVITY_TYPES_ACTIVITY_ERROR_FAILED;
    plugin_string_dup(&err->val.failed.reason, "BadInput");
    err->val.failed.details.is_some = true;
    plugin_string_dup(&err->val.failed.details.val, details);
    return false;
}

bool exports_swasm_activity_activity_run(exports_swasm_activity_activity_activity_task_t *task,
                                         plugin_option_string_t *ret,
                                         exports_swasm_activity_activity_activity_error_t *err) {
    unsigned long long fields[2] = {10, 100};  // steps, step_ms
    const char *bad = NULL;
    if (task->input.is_some)
        bad = read_input((const char *)task->input.val.ptr, task->input.val.len, fields);
    exports_swasm_activity_activity_activity_task_free(task);
    if (bad != NULL) return fail(err, bad);
    unsigned long long steps = fields[0], step_ms = fields[1];

    fprintf(stderr, "countdown-c: %llu steps of %llu ms\n", steps, step_ms);
    char progress[64];
    for (unsigned long long step = 1; step <= steps; step++) {
        // nanosleep -> WASI preview 1 poll_oneoff -> (adapter) wasi:clocks/monotonic-clock.
        struct timespec pause = {(time_t)(step_ms / 1000), (long)(step_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        snprintf(progress, sizeof progress, "{\"step\":%llu,\"of\":%llu}", step, steps);
        plugin_string_t details;
        plugin_string_set(&details, progress);  // borrowed: the host copies it during the call
        if (swasm_activity_host_heartbeat(&details)) {
            fprintf(stderr, "countdown-c: cancel requested at step %llu\n", step);
            err->tag = SWASM_ACTIVITY_TYPES_ACTIVITY_ERROR_CANCELED;
            err->val.canceled.is_some = true;
            plugin_string_dup(&err->val.canceled.val, progress);
            return false;
        }
    }
    char done[32];
    snprintf(done, sizeof done, "{\"done\":%llu}", steps);
    ret->is_some = true;
    plugin_string_dup(&ret->val, done);
    return true;
}
