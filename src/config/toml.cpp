// Bridge from tomlplusplus to jansson, callable from C (see toml.h). Every entry point catches
// all exceptions, because an exception that unwinds into C code is undefined behaviour.
#include "config/toml.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include <toml++/toml.h>

// Debian's libtomlplusplus exports only the throwing parser, so the bridge relies on
// exceptions to see parse errors.
static_assert(TOML_EXCEPTIONS, "the TOML bridge needs tomlplusplus built with exceptions");

struct toml_doc {
    toml::table table;
};

namespace {

void set_error(struct toml_error *err, int line, int column, std::string_view message) {
    err->line = line;
    err->column = column;
    err->previous_line = 0;
    size_t n = std::min(message.size(), sizeof err->message - 1);
    std::memcpy(err->message, message.data(), n);
    err->message[n] = '\0';
}

// Returns the byte offset where the given 1-based line starts in text.
size_t line_start(std::string_view text, int line) {
    size_t offset = 0;
    for (int current = 1; current < line; current++) {
        size_t nl = text.find('\n', offset);
        if (nl == std::string_view::npos)
            return text.size();
        offset = nl + 1;
    }
    return offset;
}

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Returns the name quoted in a table redefinition message such as "Error while parsing table
// header: cannot redefine existing table 'faktory'", or an empty view for any other message.
// Key-value redefinitions are left out because their quoted key is relative to the current
// table and cannot be looked up from the root.
std::string_view redefined_table(std::string_view message) {
    static constexpr std::string_view phrase = "cannot redefine existing ";
    size_t at = message.find(phrase);
    if (at == std::string_view::npos)
        return {};
    message.remove_prefix(at);
    if (message.substr(phrase.size(), 7) != "table '" && !ends_with(message, " as table") &&
        !ends_with(message, " as array-of-tables"))
        return {};
    size_t open = message.find('\'');
    size_t close = message.find('\'', open + 1);
    if (open == std::string_view::npos || close == std::string_view::npos)
        return {};
    return message.substr(open + 1, close - open - 1);
}

// Finds where a redefined table was first defined: the text before the failing line parsed
// cleanly (the parser stops at the first error), so it still contains the first definition.
int first_definition_line(std::string_view text, int error_line, std::string_view name) {
    try {
        toml::table prefix = toml::parse(text.substr(0, line_start(text, error_line)));
        toml::node_view<toml::node> node = toml::at_path(prefix, name);
        if (!node)
            return 0;
        return static_cast<int>(node.node()->source().begin.line);
    } catch (...) {
        return 0;
    }
}

// Formats "HH:MM:SS" with a fraction only when there is one, as RFC 3339 allows.
std::string format_time(const toml::time &t) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02u:%02u:%02u", t.hour, t.minute, t.second);
    std::string out = buf;
    if (t.nanosecond != 0) {
        std::snprintf(buf, sizeof buf, ".%09u", t.nanosecond);
        std::string fraction = buf;
        fraction.erase(fraction.find_last_not_of('0') + 1);
        out += fraction;
    }
    return out;
}

std::string format_date(const toml::date &d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04u-%02u-%02u", d.year, d.month, d.day);
    return buf;
}

// Local date-times keep no offset; offset date-times end in "Z" or "+HH:MM".
std::string format_date_time(const toml::date_time &dt) {
    std::string out = format_date(dt.date) + "T" + format_time(dt.time);
    if (!dt.offset)
        return out;
    int minutes = dt.offset->minutes;
    if (minutes == 0)
        return out + "Z";
    char buf[16];
    int magnitude = std::abs(minutes);
    std::snprintf(buf, sizeof buf, "%c%02d:%02d", minutes < 0 ? '-' : '+', magnitude / 60,
                  magnitude % 60);
    return out + buf;
}

json_t *string_json(const std::string &s) {
    return json_stringn(s.data(), s.size());
}

json_t *node_to_json(const toml::node &node, struct toml_error *err);

json_t *table_to_json(const toml::table &table, struct toml_error *err) {
    json_t *object = json_object();
    if (!object)
        return nullptr;
    for (const auto &[key, child] : table) {
        json_t *value = node_to_json(child, err);
        if (!value || json_object_setn_new(object, key.data(), key.length(), value) != 0) {
            json_decref(object);
            return nullptr;
        }
    }
    return object;
}

json_t *array_to_json(const toml::array &array, struct toml_error *err) {
    json_t *list = json_array();
    if (!list)
        return nullptr;
    for (const toml::node &child : array) {
        if (json_array_append_new(list, node_to_json(child, err)) != 0) {
            json_decref(list);
            return nullptr;
        }
    }
    return list;
}

json_t *float_to_json(const toml::node &node, struct toml_error *err) {
    double value = node.as_floating_point()->get();
    if (std::isfinite(value))
        return json_real(value);
    set_error(err, static_cast<int>(node.source().begin.line),
              static_cast<int>(node.source().begin.column),
              "inf and nan are not supported, because JSON has no such numbers");
    return nullptr;
}

// The TOML parser bounds nesting depth, so this recursion is bounded too.
json_t *node_to_json(const toml::node &node, struct toml_error *err) {
    switch (node.type()) {
    case toml::node_type::table:
        return table_to_json(*node.as_table(), err);
    case toml::node_type::array:
        return array_to_json(*node.as_array(), err);
    case toml::node_type::string:
        return string_json(node.as_string()->get());
    case toml::node_type::integer:
        return json_integer(node.as_integer()->get());
    case toml::node_type::floating_point:
        return float_to_json(node, err);
    case toml::node_type::boolean:
        return json_boolean(node.as_boolean()->get());
    case toml::node_type::date:
        return string_json(format_date(node.as_date()->get()));
    case toml::node_type::time:
        return string_json(format_time(node.as_time()->get()));
    case toml::node_type::date_time:
        return string_json(format_date_time(node.as_date_time()->get()));
    case toml::node_type::none:
        break;
    }
    return nullptr;
}

} // namespace

extern "C" int toml_doc_parse(const char *text, size_t len, struct toml_doc **out,
                              struct toml_error *err) {
    *out = nullptr;
    std::string_view source(text, len);
    try {
        *out = new toml_doc{toml::parse(source)};
        return 0;
    } catch (const toml::parse_error &e) {
        int line = static_cast<int>(e.source().begin.line);
        set_error(err, line, static_cast<int>(e.source().begin.column), e.description());
        std::string_view name = redefined_table(e.description());
        if (!name.empty())
            err->previous_line = first_definition_line(source, line, name);
    } catch (const std::bad_alloc &) {
        set_error(err, 0, 0, "out of memory");
    } catch (...) {
        set_error(err, 0, 0, "unexpected error in the TOML parser");
    }
    return -1;
}

extern "C" json_t *toml_doc_to_json(const struct toml_doc *doc, struct toml_error *err) {
    set_error(err, 0, 0, "out of memory");
    try {
        return table_to_json(doc->table, err);
    } catch (...) {
        set_error(err, 0, 0, "out of memory");
        return nullptr;
    }
}

extern "C" int toml_doc_line(const struct toml_doc *doc, const char *table, const char *key) {
    try {
        const toml::node *node = doc->table.get(table);
        if (node && key)
            node = node->is_table() ? node->as_table()->get(key) : nullptr;
        return node ? static_cast<int>(node->source().begin.line) : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" void toml_doc_free(struct toml_doc *doc) {
    delete doc;
}
