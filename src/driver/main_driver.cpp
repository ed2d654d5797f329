#include <cstdio>
namespace ringattn::driver {
int main_entry(int, char **) {
  std::puts("ringattn: placeholder");
  return 0;
}
} // namespace ringattn::driver
