// How deeply a JSON text nests, read without building anything: every parser of untrusted JSON
// checks it first, because a DOM copy or destructor recurses once per level (150,000 nested `[`
// crashed the server with a stack overflow before this check existed).
#pragma once

#include <string_view>

namespace ll {

// The deepest nesting of arrays and objects any request body may have (the OpenAI API's
// messages with content parts need 5).
inline constexpr int kMaxJsonDepth = 64;

// True when `text` opens more than `max_depth` arrays or objects inside each other. Brackets in
// strings do not count; the text need not be valid JSON (the parser says what else is wrong).
bool JsonNestsDeeperThan(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace ll
