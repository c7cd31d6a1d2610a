// common's file helpers: a whole-file read, and a write that replaces a file whole or not at all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/common.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

TEST(Files, AnAtomicWriteReplacesTheFileWholeAndLeavesNoTemporary) {
  const fs::path dir = fs::temp_directory_path() / ("kforge-files-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "f.json").string();
  for (auto durability : {Durability::cache, Durability::durable}) {
    ASSERT_TRUE(write_file_atomically(path, "old", durability).ok());
    const std::string text(1 << 20, 'x');  // more than one write() may take
    ASSERT_TRUE(write_file_atomically(path, text, durability).ok());
    EXPECT_EQ(read_file(path).value(), text);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "a temporary was left";

  // Where it cannot write: an io error that names the path, and the old file untouched.
  auto missing = write_file_atomically((dir / "no" / "f").string(), "x", Durability::durable);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::io);
  EXPECT_NE(missing.error().message.find((dir / "no" / "f").string()), std::string::npos) << missing.error().message;
  fs::create_directories(dir / "d");
  auto onto_directory = write_file_atomically((dir / "d").string(), "x", Durability::cache);  // rename fails
  ASSERT_FALSE(onto_directory.ok());
  EXPECT_TRUE(fs::is_directory(dir / "d"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2) << "a temporary was left";
  fs::remove_all(dir);
}

TEST(Files, ReadingAMissingFileOrADirectoryIsAnIoError) {
  auto missing = read_file("/nonexistent/kforge");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::io);
  auto directory = read_file(fs::temp_directory_path().string());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.error().message.find("is a directory"), std::string::npos);
}

}  // namespace
