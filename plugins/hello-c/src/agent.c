/* A Paddock agent in C: greets by name, counts visits on the blackboard, and
 * asks the "fast" route for a fun fact.
 *
 * Input (JSON object): "name" (default "world"); "spin": true loops until a
 * limit stops it; "allocate_mib": N holds N MiB while it works (to see the
 * memory cap); "tool": "server/tool" calls that tool of the operator's MCP
 * servers with "tool_args" (an object, default {}), once the manifest's
 * `capabilities.tools` asks for it. Output: {"greeting", "visits", "fun_fact":
 * {"text", "provider", "model"} or {"error"}, "language"}, and "tool":
 * {"text"} or {"error"} when one was called. `compensate` takes back the visit.
 *
 * Ownership, as wit-bindgen's C bindings define it: the agent owns the
 * `input` of an export and frees it; it fills `ret` or `err` with memory the
 * bindings free after the call. Arguments passed to an import stay the
 * caller's; results and errors of an import are the caller's to free. */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_world.h"
#include "json.h"

#define ROUTE "fast"
/* A compare-and-swap loses only to another writer of the same key; give up
 * after this many losses in a row rather than loop for ever. */
#define MAX_CONFLICTS 10
#define MAX_ALLOCATE_MIB 4096

typedef struct {
    char *name;
    size_t name_len;
    bool spin;
    bool allocate;
    size_t allocate_mib;
    char *tool; /* NULL: no tool to call */
    size_t tool_len;
    char *tool_args; /* its arguments' JSON text */
    size_t tool_args_len;
} input_t;

static void free_input(input_t *input) {
    free(input->name);
    free(input->tool);
    free(input->tool_args);
    memset(input, 0, sizeof *input);
}

/* Moves `text` into `err` (or reports running out of memory) and returns false. */
static bool fail_with(agent_world_string_t *err, json_buf_t *text) {
    if (text->failed) {
        agent_world_string_dup(err, "out of memory");
    } else {
        agent_world_string_dup_n(err, text->ptr, text->len);
    }
    json_buf_free(text);
    return false;
}

/* Formats a message into `err` and returns false, for `return fail(err, ...)`. */
__attribute__((format(printf, 2, 3))) static bool fail(agent_world_string_t *err, const char *format, ...) {
    json_buf_t text = {0};
    va_list args;
    va_start(args, format);
    json_buf_vaddf(&text, format, args);
    va_end(args);
    return fail_with(err, &text);
}

__attribute__((format(printf, 2, 3))) static void log_line(paddock_agent_log_level_t level, const char *format, ...) {
    json_buf_t text = {0};
    va_list args;
    va_start(args, format);
    json_buf_vaddf(&text, format, args);
    va_end(args);
    if (text.failed) {
        fputs("log: out of memory\n", stderr);
    } else {
        agent_world_string_t line = {(uint8_t *)text.ptr, text.len};
        paddock_agent_log_log(level, &line);
    }
    json_buf_free(&text);
}

static void describe_llm_error(const paddock_agent_llm_error_t *e, json_buf_t *out) {
    const agent_world_string_t *why = NULL;
    switch (e->tag) {
    case PADDOCK_AGENT_LLM_ERROR_DENIED: json_buf_addf(out, "denied: "); why = &e->val.denied; break;
    case PADDOCK_AGENT_LLM_ERROR_BUDGET_EXCEEDED: json_buf_addf(out, "budget exceeded: "); why = &e->val.budget_exceeded; break;
    case PADDOCK_AGENT_LLM_ERROR_RATE_LIMITED: json_buf_addf(out, "rate limited: retry after %llu ms", (unsigned long long)e->val.rate_limited); break;
    case PADDOCK_AGENT_LLM_ERROR_INVALID_REQUEST: json_buf_addf(out, "invalid request: "); why = &e->val.invalid_request; break;
    case PADDOCK_AGENT_LLM_ERROR_CONTENT_FILTERED: json_buf_addf(out, "content filtered: "); why = &e->val.content_filtered; break;
    case PADDOCK_AGENT_LLM_ERROR_TIMEOUT: json_buf_addf(out, "timed out"); break;
    case PADDOCK_AGENT_LLM_ERROR_UNAVAILABLE: json_buf_addf(out, "unavailable: "); why = &e->val.unavailable; break;
    default: json_buf_addf(out, "unknown error %u", e->tag); break;
    }
    if (why) {
        json_buf_add(out, (const char *)why->ptr, why->len);
    }
}

static void describe_board_error(const paddock_agent_blackboard_error_t *e, json_buf_t *out) {
    const agent_world_string_t *why = NULL;
    switch (e->tag) {
    case PADDOCK_AGENT_BLACKBOARD_ERROR_DENIED: json_buf_addf(out, "denied: "); why = &e->val.denied; break;
    case PADDOCK_AGENT_BLACKBOARD_ERROR_CONFLICT: json_buf_addf(out, "conflict: now at revision %llu", (unsigned long long)e->val.conflict); break;
    case PADDOCK_AGENT_BLACKBOARD_ERROR_TOO_LARGE: json_buf_addf(out, "too large: the limit is %llu bytes", (unsigned long long)e->val.too_large); break;
    case PADDOCK_AGENT_BLACKBOARD_ERROR_QUOTA_EXCEEDED: json_buf_addf(out, "quota exceeded: "); why = &e->val.quota_exceeded; break;
    case PADDOCK_AGENT_BLACKBOARD_ERROR_LAGGED: json_buf_addf(out, "lagged: resume after revision %llu", (unsigned long long)e->val.lagged); break;
    case PADDOCK_AGENT_BLACKBOARD_ERROR_UNAVAILABLE: json_buf_addf(out, "unavailable: "); why = &e->val.unavailable; break;
    default: json_buf_addf(out, "unknown error %u", e->tag); break;
    }
    if (why) {
        json_buf_add(out, (const char *)why->ptr, why->len);
    }
}

static void describe_tool_error(const paddock_agent_tools_error_t *e, json_buf_t *out) {
    const agent_world_string_t *why = NULL;
    switch (e->tag) {
    case PADDOCK_AGENT_TOOLS_ERROR_DENIED: json_buf_addf(out, "denied: "); why = &e->val.denied; break;
    case PADDOCK_AGENT_TOOLS_ERROR_INVALID_ARGUMENTS: json_buf_addf(out, "invalid arguments: "); why = &e->val.invalid_arguments; break;
    case PADDOCK_AGENT_TOOLS_ERROR_FAILED: json_buf_addf(out, "failed: "); why = &e->val.failed; break;
    case PADDOCK_AGENT_TOOLS_ERROR_TIMEOUT: json_buf_addf(out, "timed out: "); why = &e->val.timeout; break;
    case PADDOCK_AGENT_TOOLS_ERROR_UNAVAILABLE: json_buf_addf(out, "unavailable: "); why = &e->val.unavailable; break;
    case PADDOCK_AGENT_TOOLS_ERROR_BUDGET_EXCEEDED: json_buf_addf(out, "budget exceeded: "); why = &e->val.budget_exceeded; break;
    case PADDOCK_AGENT_TOOLS_ERROR_RATE_LIMITED: json_buf_addf(out, "rate limited: retry after %llu ms", (unsigned long long)e->val.rate_limited); break;
    default: json_buf_addf(out, "unknown error %u", e->tag); break;
    }
    if (why) {
        json_buf_add(out, (const char *)why->ptr, why->len);
    }
}

static bool fail_board(agent_world_string_t *err, const paddock_agent_blackboard_error_t *e) {
    json_buf_t text = {0};
    json_buf_addf(&text, "blackboard: ");
    describe_board_error(e, &text);
    return fail_with(err, &text);
}

/* The members of the input it reads, in the order of `input_member_t`. */
static const char *const MEMBERS[] = {"name", "spin", "allocate_mib", "tool", "tool_args"};
typedef enum { NAME, SPIN, MIB, TOOL, TOOL_ARGS, MEMBER_COUNT } input_member_t;

/* Copies `len` bytes of `bytes` into a new NUL-terminated string. */
static char *copy(const char *bytes, size_t len) {
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, bytes, len);
        out[len] = '\0';
    }
    return out;
}

static bool parse_input(const agent_world_string_t *text, input_t *input, agent_world_string_t *err) {
    memset(input, 0, sizeof *input);
    json_value_t v[MEMBER_COUNT];
    json_status_t status = JSON_OK;
    size_t read = 0;
    while (read < MEMBER_COUNT && status == JSON_OK) {
        status = json_object_get((const char *)text->ptr, text->len, MEMBERS[read], &v[read]);
        read++;
    }
    bool ok = status == JSON_OK || fail(err, status == JSON_NO_MEMORY ? "out of memory" : "input must be a JSON object");
    if (ok && (v[NAME].kind == JSON_MISSING || v[NAME].kind == JSON_NULL)) {
        input->name = strdup("world");
        input->name_len = 5;
        ok = input->name != NULL || fail(err, "out of memory");
    } else if (ok && (v[NAME].kind != JSON_STRING || v[NAME].string_len == 0)) {
        ok = fail(err, "input.name must be a non-empty string");
    } else if (ok) {
        input->name = v[NAME].string;
        input->name_len = v[NAME].string_len;
        v[NAME].string = NULL;
    }
    input->spin = ok && v[SPIN].kind == JSON_BOOL && v[SPIN].boolean;
    if (ok && v[MIB].kind != JSON_MISSING && v[MIB].kind != JSON_NULL) {
        double mib = v[MIB].number;
        bool whole = v[MIB].kind == JSON_NUMBER && mib >= 0 && mib <= MAX_ALLOCATE_MIB && mib == (double)(size_t)mib;
        if (!whole) {
            ok = fail(err, "input.allocate_mib must be a whole number from 0 to %d", MAX_ALLOCATE_MIB);
        }
        input->allocate = true;
        input->allocate_mib = whole ? (size_t)mib : 0;
    }
    if (ok && v[TOOL].kind != JSON_MISSING && v[TOOL].kind != JSON_NULL) {
        if (v[TOOL].kind != JSON_STRING || v[TOOL].string_len == 0) {
            ok = fail(err, "input.tool must be a tool name like \"server/tool\"");
        } else {
            input->tool = v[TOOL].string;
            input->tool_len = v[TOOL].string_len;
            v[TOOL].string = NULL;
        }
    }
    if (ok && input->tool) {
        const json_value_t *args = &v[TOOL_ARGS];
        if (args->kind == JSON_MISSING || args->kind == JSON_NULL) {
            input->tool_args = copy("{}", 2);
            input->tool_args_len = 2;
        } else if (args->kind == JSON_COMPOSITE && args->raw[0] == '{') {
            input->tool_args = copy(args->raw, args->raw_len);
            input->tool_args_len = args->raw_len;
        } else {
            ok = fail(err, "input.tool_args must be a JSON object");
        }
        ok = ok && (input->tool_args != NULL || fail(err, "out of memory"));
    }
    for (size_t i = 0; i < read; i++) {
        json_value_free(&v[i]);
    }
    if (!ok) {
        free_input(input);
    }
    return ok;
}

static bool add_visits(const input_t *input, int delta, uint64_t *count, agent_world_string_t *err) {
    json_buf_t key_text = {0};
    json_buf_addf(&key_text, "visits/%.*s", (int)input->name_len, input->name);
    if (key_text.failed) {
        json_buf_free(&key_text);
        return fail(err, "out of memory");
    }
    agent_world_string_t key = {(uint8_t *)key_text.ptr, key_text.len};
    bool ok = false;
    bool done = false;
    for (int attempt = 0; attempt < MAX_CONFLICTS && !done; attempt++) {
        paddock_agent_blackboard_option_entry_t entry;
        paddock_agent_blackboard_error_t board_error;
        if (!paddock_agent_blackboard_get(&key, &entry, &board_error)) {
            done = true;
            fail_board(err, &board_error);
            paddock_agent_blackboard_error_free(&board_error);
            break;
        }
        uint64_t current = 0;
        uint64_t revision = 0;
        if (entry.is_some) {
            revision = entry.val.revision;
            const agent_world_list_u8_t *value = &entry.val.value;
            bool digits = value->len > 0 && value->len <= 19;
            for (size_t i = 0; digits && i < value->len; i++) {
                digits = value->ptr[i] >= '0' && value->ptr[i] <= '9';
                current = current * 10 + (uint64_t)(value->ptr[i] - '0');
            }
            if (!digits) {
                paddock_agent_blackboard_option_entry_free(&entry);
                done = true;
                fail(err, "blackboard: %.*s does not hold a count", (int)key.len, (const char *)key.ptr);
                break;
            }
        }
        paddock_agent_blackboard_option_entry_free(&entry);
        uint64_t magnitude = delta < 0 ? (uint64_t)(-(int64_t)delta) : (uint64_t)delta;
        *count = delta >= 0 ? current + magnitude : current > magnitude ? current - magnitude : 0;
        char number[24];
        int n = snprintf(number, sizeof number, "%llu", (unsigned long long)*count);
        agent_world_list_u8_t value = {(uint8_t *)number, (size_t)n};
        uint64_t written;
        if (paddock_agent_blackboard_compare_and_swap(&key, revision, &value, &written, &board_error)) {
            ok = done = true;
        } else {
            if (board_error.tag != PADDOCK_AGENT_BLACKBOARD_ERROR_CONFLICT) {
                done = true;
                fail_board(err, &board_error);
            }
            paddock_agent_blackboard_error_free(&board_error);
        }
    }
    if (!done) {
        fail(err, "blackboard: %.*s changed %d times in a row; giving up", (int)key.len, (const char *)key.ptr, MAX_CONFLICTS);
    }
    json_buf_free(&key_text);
    return ok;
}

/* Asks the route and writes {"text", "provider", "model"}, or {"error"} when
 * the call fails, so that the greeting still works. */
static void fun_fact(const input_t *input, json_buf_t *out) {
    json_buf_t prompt = {0};
    json_buf_addf(&prompt, "One fun fact about the name %.*s, in one sentence.", (int)input->name_len, input->name);
    if (prompt.failed) {
        json_buf_free(&prompt);
        out->failed = true;
        return;
    }
    paddock_agent_llm_message_t message = {
        .role = PADDOCK_AGENT_LLM_ROLE_USER,
        .content = {(uint8_t *)prompt.ptr, prompt.len},
    };
    paddock_agent_llm_request_t request = {
        .messages = {&message, 1},
        .max_tokens = {.is_some = true, .val = 60},
    };
    agent_world_string_set(&request.route, ROUTE);
    paddock_agent_llm_response_t answer;
    paddock_agent_llm_error_t error;
    if (paddock_agent_llm_complete(&request, &answer, &error)) {
        json_buf_addf(out, "{\"text\":");
        json_buf_add_string(out, (const char *)answer.text.ptr, answer.text.len);
        json_buf_addf(out, ",\"provider\":");
        json_buf_add_string(out, (const char *)answer.provider.ptr, answer.provider.len);
        json_buf_addf(out, ",\"model\":");
        json_buf_add_string(out, (const char *)answer.model.ptr, answer.model.len);
        json_buf_addf(out, "}");
        paddock_agent_llm_response_free(&answer);
    } else {
        json_buf_t why = {0};
        describe_llm_error(&error, &why);
        paddock_agent_llm_error_free(&error);
        if (!why.failed) {
            log_line(PADDOCK_AGENT_LOG_LEVEL_WARN, "no fun fact: %.*s", (int)why.len, why.ptr);
        }
        json_buf_addf(out, "{\"error\":");
        json_buf_add_string(out, why.ptr, why.len);
        json_buf_addf(out, "}");
        out->failed |= why.failed;
        json_buf_free(&why);
    }
    json_buf_free(&prompt);
}

/* Calls the input's tool; a failure becomes {"error": ...} so the greeting still works. */
static void call_tool(const input_t *input, json_buf_t *out) {
    agent_world_string_t name = {(uint8_t *)input->tool, input->tool_len};
    agent_world_string_t args = {(uint8_t *)input->tool_args, input->tool_args_len};
    paddock_agent_tools_output_t output;
    paddock_agent_tools_error_t error;
    if (paddock_agent_tools_call(&name, &args, &output, &error)) {
        json_buf_addf(out, "{\"text\":");
        json_buf_add_string(out, (const char *)output.text.ptr, output.text.len);
        json_buf_addf(out, "}");
        paddock_agent_tools_output_free(&output);
    } else {
        json_buf_t why = {0};
        describe_tool_error(&error, &why);
        paddock_agent_tools_error_free(&error);
        json_buf_addf(out, "{\"error\":");
        json_buf_add_string(out, why.ptr, why.len);
        json_buf_addf(out, "}");
        out->failed |= why.failed;
        json_buf_free(&why);
    }
}

bool exports_paddock_agent_agent_run(agent_world_string_t *input_text, agent_world_string_t *ret, agent_world_string_t *err) {
    input_t input;
    bool ok = parse_input(input_text, &input, err);
    agent_world_string_free(input_text);
    if (!ok) {
        return false;
    }
    char *hog = NULL;
    if (input.allocate) {
        size_t bytes = input.allocate_mib << 20;
        hog = malloc(bytes ? bytes : 1);
        if (!hog) {
            free_input(&input);
            return fail(err, "cannot allocate %zu MiB", input.allocate_mib);
        }
        memset(hog, 1, bytes); /* touch every page */
    }
    if (input.spin) {
        log_line(PADDOCK_AGENT_LOG_LEVEL_WARN, "spinning until a limit stops me");
        for (volatile uint64_t n = 0;; n++) {
        }
    }
    log_line(PADDOCK_AGENT_LOG_LEVEL_INFO, "greeting %.*s", (int)input.name_len, input.name);
    uint64_t visits;
    ok = add_visits(&input, 1, &visits, err);
    if (ok) {
        json_buf_t out = {0};
        json_buf_addf(&out, "{\"greeting\":");
        json_buf_t greeting = {0};
        json_buf_addf(&greeting, "Hello, %.*s!", (int)input.name_len, input.name);
        json_buf_add_string(&out, greeting.ptr, greeting.len);
        out.failed |= greeting.failed;
        json_buf_free(&greeting);
        json_buf_addf(&out, ",\"visits\":%llu,\"fun_fact\":", (unsigned long long)visits);
        fun_fact(&input, &out);
        json_buf_addf(&out, ",\"language\":\"c\"");
        if (input.tool) {
            json_buf_addf(&out, ",\"tool\":");
            call_tool(&input, &out);
        }
        if (hog) {
            json_buf_addf(&out, ",\"allocated_mib\":%zu", input.allocate_mib);
        }
        json_buf_addf(&out, "}");
        if (out.failed) {
            ok = fail(err, "out of memory");
        } else {
            agent_world_string_dup_n(ret, out.ptr, out.len);
        }
        json_buf_free(&out);
    }
    free(hog);
    free_input(&input);
    return ok;
}

bool exports_paddock_agent_agent_compensate(agent_world_string_t *input_text, agent_world_string_t *err) {
    input_t input;
    bool ok = parse_input(input_text, &input, err);
    agent_world_string_free(input_text);
    if (!ok) {
        return false;
    }
    uint64_t visits;
    ok = add_visits(&input, -1, &visits, err);
    if (ok) {
        log_line(PADDOCK_AGENT_LOG_LEVEL_INFO, "took back a visit of %.*s: %llu left", (int)input.name_len, input.name,
                 (unsigned long long)visits);
    }
    free_input(&input);
    return ok;
}
