// HDF5's error descriptions become one readable line in our errors.
#include <gtest/gtest.h>

#include "error_stack.hpp"

namespace hdf5_io::detail {
namespace {

TEST(Hdf5ErrorText, PosixDriverReportIsOneLineWithTheCause) {
  const std::string raw =
      "file write failed: time = Wed Dec  2 18:42:57 2026\n, filename = '/x/epoch=0-step=94.h5.tmp', file descriptor = "
      "18, errno = 28, error message = 'No space left on device', buf = 0x7f0d293e9d32, total write size = 316178";
  EXPECT_EQ(tidy_hdf5_description(raw), "file write failed: No space left on device (errno 28)");
}

TEST(Hdf5ErrorText, OtherDescriptionsKeepTheirTextOnOneLine) {
  EXPECT_EQ(tidy_hdf5_description("truncated file: eof = 5000"), "truncated file: eof = 5000");
  EXPECT_EQ(tidy_hdf5_description("a\nb"), "a b");
}

}  // namespace
}  // namespace hdf5_io::detail
