// How the client commands print the API's JSON answers without `--json`: tables, and
// `key: value` lines with times normalized to UTC. Private to the client commands (src/cli).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ll::cli::client {

// Keeps the server's key order, so `key: value` output follows the API's field order.
using Json = nlohmann::ordered_json;

// A JSON field of an object as text, "-" when absent or null.
std::string Field(const Json& obj, const char* key);
// A time field of an object, normalized to UTC; "-" when absent, as sent when it does not parse.
std::string TimeField(const Json& obj, const char* key);
// A lease's `nodes`: "node (N GPUs), ...".
std::string NodesText(const Json& nodes);

// `key: value` lines, values aligned; the `object` tag is left out.
void PrintObject(const Json& obj);
void PrintLeases(const Json& list);
void PrintQuote(const Json& q);
void PrintNewKey(const Json& k);
// `admin key list`: no secrets in it, only each key's first characters.
void PrintKeys(const Json& list);
void PrintInvoices(const Json& list);
void PrintInvoice(const Json& inv);
void PrintUsage(const Json& u);

}  // namespace ll::cli::client
