/* placeholder: the real tests for config are being written */
#include "test.h"
TEST(placeholder) { CHECK(1); }
TESTS(placeholder)
