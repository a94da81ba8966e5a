// The project's error type and the check macro that every precondition goes through.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace medtl {

// Thrown for every user-facing failure: bad shapes, wrong dtypes, unreadable files. The message
// names what was expected, what was found and, where there is one, what to do about it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename First, typename... Rest>
void append_all(std::ostringstream& out, const First& first, const Rest&... rest) {
  out << first;
  append_all(out, rest...);
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

// Builds a message from any streamable pieces: str_cat("got ", 3, " dims").
template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream out;
  detail::append_all(out, parts...);
  return out.str();
}

}  // namespace medtl

// MEDTL_CHECK(cond, "message pieces", ...) throws medtl::Error with file and line when cond is
// false. Use it for anything a user can get wrong; it is not compiled out.
#define MEDTL_CHECK(cond, ...)                                                                  \
  do {                                                                                          \
    if (!(cond)) ::medtl::detail::throw_error(__FILE__, __LINE__, ::medtl::str_cat(__VA_ARGS__)); \
  } while (0)
