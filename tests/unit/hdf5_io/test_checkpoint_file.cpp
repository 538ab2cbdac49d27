// hdf5_io checkpoint files: crash-safe writing (commit, abandon, a crash between fsync and rename),
// the format identity checks of open_checkpoint, checksum verification naming the corrupt dataset,
// the `latest` pointer, stale temporaries, export_weights and integer attributes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <typeinfo>

#include "hdf5_io/checkpoint_file.hpp"
#include "../../support/temp_dir.hpp"
#include "hdf5_test_support.hpp"

namespace hdf5_io {
namespace {

namespace fs = std::filesystem;

using ::mpitrain::test::TempDir;

using test::contains;
using test::error_of;
using test::slurp;

// Writes and commits a checkpoint holding /model/w = `w`.
void write_checkpoint(const std::string& path, const at::Tensor& w) {
  CheckpointWriter writer(path);
  H5::Group g = require_group(writer.file(), "/model");
  write_tensor(g, "w", w);
  g.close();  // commit() needs every handle closed
  writer.commit();
}

at::Tensor read_model_w(const std::string& path) {
  H5::H5File f = open_checkpoint(path);
  return read_tensor(f.openGroup("/model"), "w");
}

TEST(CheckpointFile, CommitMovesTheFileIntoPlaceAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("a.h5");
  const at::Tensor w = at::arange(24, at::kFloat).reshape({4, 6});
  {
    CheckpointWriter writer(path);
    EXPECT_EQ(writer.path(), path);
    H5::Group g = require_group(writer.file(), "/model");
    write_tensor(g, "w", w);
    EXPECT_TRUE(fs::exists(path + ".tmp")) << "the writer writes <path>.tmp";
    EXPECT_FALSE(fs::exists(path)) << "nothing at the final path before commit()";
    g.close();  // commit() needs every handle closed
    writer.commit();
    EXPECT_TRUE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  // The destructor of a committed writer leaves the file alone.
  ASSERT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  H5::H5File f = open_checkpoint(path);
  H5::Group root = f.openGroup("/");
  EXPECT_EQ(get_attribute(root, "format"), kFormatName);
  EXPECT_EQ(get_int_attribute(root, "format_version"), kFormatVersion);
  EXPECT_TRUE(read_tensor(f.openGroup("/model"), "w").equal(w));
  // Only the checkpoint is left in the directory.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    ++entries;
    EXPECT_EQ(e.path().filename().string(), "a.h5");
  }
  EXPECT_EQ(entries, 1);
}

TEST(CheckpointFile, WriterDestroyedWithoutCommitLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("new.h5");
  {
    CheckpointWriter writer(path);
    H5::Group g = require_group(writer.file(), "/model");
    write_tensor(g, "w", at::ones({8}));
    ASSERT_TRUE(fs::exists(path + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(CheckpointFile, AbandonedWriterDoesNotTouchTheExistingCheckpoint) {
  TempDir dir;
  const std::string path = dir.file("good.h5");
  const at::Tensor old_w = at::arange(100, at::kFloat).add_(1.0f);
  write_checkpoint(path, old_w);
  const std::string old_bytes = slurp(path);
  {
    CheckpointWriter writer(path);
    H5::Group g = require_group(writer.file(), "/model");
    write_tensor(g, "w", at::zeros({100}));
    write_tensor(g, "extra", at::zeros({3}));
    // destroyed here, as if an exception unwound the save
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(slurp(path), old_bytes) << "the good file was modified";
  EXPECT_TRUE(read_model_w(path).equal(old_w));
  EXPECT_EQ(verify_checkpoint(path), 1);
}

TEST(CheckpointFile, CrashBetweenFsyncAndRenameKeepsTheOldCheckpoint) {
  TempDir dir;
  const std::string path = dir.file("epoch=1-step=10.h5"), tmp = path + ".tmp";
  const at::Tensor old_w = at::arange(1000, at::kFloat).add_(7000.0f);
  const at::Tensor new_w = at::arange(1000, at::kFloat).add_(-5000.0f);  // made before fork: the child only writes
  write_checkpoint(path, old_w);

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << "fork failed";
  if (pid == 0) {  // child: save a new version of the same checkpoint with the crash hook on
    ::setenv("MPITRAIN_TEST_CRASH_BEFORE_RENAME", "1", 1);
    try {
      write_checkpoint(path, new_w);
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);  // commit() returned: the hook did not fire
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child did not exit normally, status " << status;
  ASSERT_EQ(WEXITSTATUS(status), 86) << "0: commit() returned (hook ignored); 2: the save threw";
  EXPECT_EQ(std::getenv("MPITRAIN_TEST_CRASH_BEFORE_RENAME"), nullptr) << "the hook leaked into the parent";

  // The previous checkpoint is intact and still the one at the path.
  ASSERT_TRUE(fs::exists(path));
  EXPECT_TRUE(read_model_w(path).equal(old_w)) << "the old checkpoint does not hold the old data";
  EXPECT_EQ(verify_checkpoint(path), 1);
  // The new data reached the temporary (it was fsynced before the crash).
  ASSERT_TRUE(fs::exists(tmp));
  EXPECT_TRUE(read_model_w(tmp).equal(new_w));

  // The next save cleans it up.
  EXPECT_EQ(remove_stale_temporaries(dir.path.string()), 1);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(remove_stale_temporaries(dir.path.string()), 0);
  EXPECT_TRUE(read_model_w(path).equal(old_w));
}

TEST(CheckpointFile, OpenCheckpointRejectsWhatIsNotACheckpoint) {
  TempDir dir;
  // A missing path.
  const std::string missing = dir.file("missing.h5");
  std::string m = error_of([&] { open_checkpoint(missing); });
  EXPECT_TRUE(contains(m, missing) && contains(m, "does not exist")) << m;

  // A text file.
  const std::string text = dir.file("notes.h5");
  std::ofstream(text) << "this is not an HDF5 file\n";
  m = error_of([&] { open_checkpoint(text); });
  EXPECT_TRUE(contains(m, text + " is not an HDF5 file")) << m;

  // An HDF5 file without the format attribute.
  const std::string plain = dir.file("plain.h5");
  {
    H5::H5File f = create_file(plain);
    H5::Group root = f.openGroup("/");
    write_tensor(root, "x", at::ones({3}));
  }
  m = error_of([&] { open_checkpoint(plain); });
  EXPECT_TRUE(contains(m, plain) && contains(m, "not an mpitrain checkpoint")) << m;

  // An HDF5 file of another format.
  const std::string other = dir.file("other.h5");
  {
    H5::H5File f = create_file(other);
    H5::Group root = f.openGroup("/");
    set_attribute(root, "format", "someone-elses-format");
    set_int_attribute(root, "format_version", 1);
  }
  m = error_of([&] { open_checkpoint(other); });
  EXPECT_TRUE(contains(m, other) && contains(m, "not an mpitrain checkpoint")) << m;

  // The right format without a version.
  const std::string unversioned = dir.file("unversioned.h5");
  {
    H5::H5File f = create_file(unversioned);
    H5::Group root = f.openGroup("/");
    set_attribute(root, "format", kFormatName);
  }
  m = error_of([&] { open_checkpoint(unversioned); });
  EXPECT_TRUE(contains(m, "format_version")) << m;
}

TEST(CheckpointFile, OpenCheckpointRejectsANewerFormatVersion) {
  TempDir dir;
  const std::string path = dir.file("future.h5");
  {
    CheckpointWriter w(path);
    H5::Group root = w.file().openGroup("/");
    set_int_attribute(root, "format_version", kFormatVersion + 1);
    root.close();  // commit() needs every handle closed
    w.commit();
  }
  const std::string newer = std::to_string(kFormatVersion + 1);
  std::string m = error_of([&] { open_checkpoint(path); });
  EXPECT_TRUE(contains(m, path) && contains(m, "format version " + newer)) << m;
  EXPECT_TRUE(contains(m, "newer")) << m;
  m = error_of([&] { verify_checkpoint(path); });
  EXPECT_TRUE(contains(m, "format version " + newer)) << m;

  // The current version opens.
  {
    CheckpointWriter w(path);
    w.commit();
  }
  EXPECT_EQ(error_of([&] { open_checkpoint(path); }), "<no CheckpointError>");
}

// A checkpoint-like file: parameters, buffers, nested optimizer state, a scalar.
// /model/fc.weight holds distinctive values that occur nowhere else in the file.
int64_t write_sample_checkpoint(const std::string& path, at::Tensor& distinctive) {
  distinctive = at::arange(20000, at::kFloat).add_(1234567.0f).reshape({200, 100});
  CheckpointWriter w(path);
  H5::Group root = w.file().openGroup("/");
  set_attribute(root, "module", "Mlp");
  set_attribute(root, "config", R"({"hidden": 100})");
  set_attribute(root, "strategy", "ddp");
  set_attribute(root, "kind", "full");
  H5::Group model = require_group(w.file(), "/model");
  write_tensor(model, "fc.weight", distinctive);
  write_tensor(model, "fc.bias", at::full({100}, 0.5f));
  H5::Group buffers = require_group(w.file(), "/buffers");
  write_tensor(buffers, "bn.running_mean", at::full({100}, -2.0f));
  write_tensor(buffers, "bn.num_batches_tracked", at::scalar_tensor(42, at::kLong));
  H5::Group opt = require_group(w.file(), "/optimizer/state/0");
  write_tensor(opt, "exp_avg", at::full({200, 100}, 0.25f));
  H5::Group trainer = require_group(w.file(), "/trainer");
  write_tensor(trainer, "global_step", at::scalar_tensor(9, at::kLong));
  root.close(); model.close(); buffers.close(); opt.close(); trainer.close();  // commit() needs every handle closed
  w.commit();
  return 6;
}

// Flips one byte inside the raw data of `t` (found by its first bytes at element `probe`).
void flip_byte_of(const std::string& path, const at::Tensor& t, int64_t probe) {
  std::string bytes = slurp(path);
  const float v = t.flatten()[probe].item<float>();
  const std::string needle(reinterpret_cast<const char*>(&v), sizeof v);
  const size_t pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos) << "the tensor's bytes are not in the file";
  ASSERT_EQ(bytes.find(needle, pos + 1), std::string::npos) << "the probe is not distinctive";
  bytes[pos + 1] ^= 0x40;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), long(bytes.size()));
}

TEST(CheckpointFile, VerifyCountsDatasetsAndNamesTheCorruptOne) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  at::Tensor w;
  const int64_t n = write_sample_checkpoint(path, w);
  EXPECT_EQ(verify_checkpoint(path), n);

  ASSERT_NO_FATAL_FAILURE(flip_byte_of(path, w, 12345));
  const std::string m = error_of([&] { verify_checkpoint(path); });
  EXPECT_TRUE(contains(m, "/model/fc.weight")) << m;
  EXPECT_FALSE(contains(m, "fc.bias") || contains(m, "exp_avg")) << m;
  // open_checkpoint does not read data: the identity is still fine.
  EXPECT_EQ(error_of([&] { open_checkpoint(path); }), "<no CheckpointError>");
}

TEST(CheckpointFile, VerifyNamesACorruptDatasetInANestedGroup) {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  const at::Tensor moment = at::arange(5000, at::kFloat).mul_(3.0f).add_(7654321.0f);
  {
    CheckpointWriter w(path);
    H5::Group model = require_group(w.file(), "/model");
    write_tensor(model, "w", at::ones({10}));
    H5::Group opt = require_group(w.file(), "/optimizer/state/3");
    write_tensor(opt, "exp_avg_sq", moment);
    model.close(); opt.close();  // commit() needs every handle closed
    w.commit();
  }
  EXPECT_EQ(verify_checkpoint(path), 2);
  ASSERT_NO_FATAL_FAILURE(flip_byte_of(path, moment, 4000));
  const std::string m = error_of([&] { verify_checkpoint(path); });
  EXPECT_TRUE(contains(m, "/optimizer/state/3/exp_avg_sq")) << m;
}

// Flips the first byte of `needle`, which must occur exactly once in the file.
void flip_first_byte_of(const std::string& path, const std::string& needle) {
  std::string bytes = slurp(path);
  const size_t pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos) << "not in the file";
  ASSERT_EQ(bytes.find(needle, pos + 1), std::string::npos) << "not distinctive";
  bytes[pos] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), long(bytes.size()));
}

// Attributes (the trainer-state JSON) and 0-d datasets (Adam's step) sit inside object headers,
// which the HDF5 1.8 format checksums: a flipped byte there fails verify and load too.
TEST(CheckpointFile, FlippedBytesInAttributesAndScalarsAreCaught) {
  TempDir dir;
  const std::string clean = dir.file("clean.h5");
  const int64_t step = 0x0123456789abcdefLL;
  const std::string state = R"({"epoch": 3, "marker": "trainer-state-7f3a9c"})";
  {
    CheckpointWriter w(clean);
    H5::Group trainer = require_group(w.file(), "/trainer");
    set_attribute(trainer, "state", state);
    H5::Group opt = require_group(w.file(), "/optimizer/p");
    write_tensor(opt, "step", at::scalar_tensor(step, at::kLong));
    trainer.close(); opt.close();
    w.commit();
  }
  ASSERT_EQ(verify_checkpoint(clean), 1);
  {
    H5::H5File f = open_checkpoint(clean);
    EXPECT_EQ(get_attribute(f.openGroup("/trainer"), "state"), state);  // fixed-length strings round-trip
    EXPECT_EQ(read_tensor(f.openGroup("/optimizer/p"), "step").item<int64_t>(), step);
  }
  const std::string attr = dir.file("attr.h5"), scalar = dir.file("scalar.h5");
  fs::copy_file(clean, attr);
  fs::copy_file(clean, scalar);
  ASSERT_NO_FATAL_FAILURE(flip_first_byte_of(attr, "trainer-state-7f3a9c"));
  ASSERT_NO_FATAL_FAILURE(
      flip_first_byte_of(scalar, std::string(reinterpret_cast<const char*>(&step), sizeof step)));
  const std::string ma = error_of([&] { verify_checkpoint(attr); });
  EXPECT_TRUE(contains(ma, "/trainer") && contains(ma, "checksum")) << ma;
  const std::string ms = error_of([&] { verify_checkpoint(scalar); });
  EXPECT_TRUE(contains(ms, "/optimizer/p/step") && contains(ms, "checksum")) << ms;
}

TEST(CheckpointFile, TruncatedFileFailsVerify) {
  TempDir dir;
  const std::string path = dir.file("big.h5");
  {
    CheckpointWriter w(path);
    H5::Group model = require_group(w.file(), "/model");
    write_tensor(model, "big", at::arange(200000, at::kFloat));
    model.close();  // commit() needs every handle closed
    w.commit();
  }
  ASSERT_EQ(verify_checkpoint(path), 1);
  fs::resize_file(path, fs::file_size(path) / 2);
  const std::string m = error_of([&] { verify_checkpoint(path); });
  EXPECT_TRUE(contains(m, path) && contains(m, "truncated") && contains(m, "dataset /model/big is cut off")) << m;
}

// HDF5 cannot open a truncated file (its index is at the end), but the layout map in the user
// block survives at the front: the error names exactly the datasets that reach past the cut.
// The tensors span several chunks, so this also checks that checksums patched into the file land
// where HDF5 put the chunks (chunk addresses are relative to the end of the user block).
TEST(CheckpointFile, TruncationNamesTheDatasetsCutOff) {
  TempDir dir;
  const std::string path = dir.file("three.h5");
  const std::vector<std::string> names = {"a", "b", "c"};
  {
    CheckpointWriter w(path);
    H5::Group model = require_group(w.file(), "/model");
    for (auto& n : names) write_tensor(model, n, at::randn({3000, 300}));  // 4 chunks each
    model.close();
    w.commit();
  }
  ASSERT_EQ(verify_checkpoint(path), 3);
  // h5py reads the file past its user block as usual.
  const std::string cmd = "/usr/bin/python3 -c \"import h5py; f=h5py.File('" + path +
                          "','r'); assert f['model/c'].shape==(3000,300) and f.userblock_size==65536\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // Where /model/a's data ends, per HDF5 itself: 4 chunks of 750 rows, each with its checksum.
  hsize_t a_end = 0;
  {
    H5::H5File f = open_checkpoint(path);
    a_end = chunk_file_offset(f.openDataSet("/model/a"), 3) + 750 * 300 * 4 + 4;
  }
  const std::string full = dir.file("full.h5");
  fs::copy_file(path, full);
  auto cut_at = [&](hsize_t size) {
    fs::remove(path);
    fs::copy_file(full, path);
    fs::resize_file(path, size);
    return error_of([&] { open_checkpoint(path); });
  };
  std::string m = cut_at(a_end - 1);  // the last byte of /model/a's checksum missing
  EXPECT_TRUE(contains(m, "is truncated (" + std::to_string(a_end - 1) + " of ")) << m;
  EXPECT_TRUE(contains(m, "datasets /model/a, /model/b, /model/c are cut off")) << m;
  m = cut_at(a_end);  // /model/a whole
  EXPECT_TRUE(contains(m, "datasets /model/b, /model/c are cut off")) << m;
  EXPECT_FALSE(contains(m, "/model/a")) << m;
  m = cut_at(hsize_t(fs::file_size(full)) - 1);  // only HDF5's index, written last
  EXPECT_TRUE(contains(m, "datasets are whole") || contains(m, "cut off")) << m;
}

// Attributes stay inside the checksummed object header even when there are more than HDF5's
// default 8 (the root has 9+) or one is over 4 KiB (which HDF5 would otherwise move to an
// unchecksummed heap block); one too large for any header (> 60 KiB) carries its own checksum.
TEST(CheckpointFile, FlippedBytesInManyOrLargeAttributesAreCaught) {
  TempDir dir;
  const std::string clean = dir.file("clean.h5");
  std::string config = "{\"marker\": \"config-4d2c\", \"pad\": \"" + std::string(5000, 'x') + "\"}";
  std::string huge = "huge-9b1e" + std::string(100000, 'y');
  {
    CheckpointWriter w(clean);
    H5::Group root = w.file().openGroup("/");
    for (int i = 0; i < 10; ++i) set_attribute(root, "extra" + std::to_string(i), "value " + std::to_string(i));
    set_attribute(root, "config", config);
    H5::Group trainer = require_group(w.file(), "/trainer");
    set_attribute(trainer, "state", huge);
    root.close(); trainer.close();
    w.commit();
  }
  ASSERT_EQ(verify_checkpoint(clean), 0);
  {
    H5::H5File f = open_checkpoint(clean);
    EXPECT_EQ(get_attribute(f.openGroup("/"), "config"), config);
    EXPECT_EQ(get_attribute(f.openGroup("/trainer"), "state"), huge);
  }
  const std::string c = dir.file("config.h5"), h = dir.file("huge.h5");
  fs::copy_file(clean, c);
  fs::copy_file(clean, h);
  ASSERT_NO_FATAL_FAILURE(flip_first_byte_of(c, "config-4d2c"));
  ASSERT_NO_FATAL_FAILURE(flip_first_byte_of(h, "huge-9b1e"));
  const std::string mc = error_of([&] { verify_checkpoint(c); });
  EXPECT_TRUE(contains(mc, "checksum")) << mc;
  const std::string mh = error_of([&] { verify_checkpoint(h); });
  EXPECT_TRUE(contains(mh, "attribute 'state' of /trainer is corrupt (Fletcher-32 mismatch)")) << mh;
}

// Other tools may add attributes of any type; verify reads them all without crashing or leaking
// (an array of variable-length strings, a compound, an empty one, a variable-length sequence).
TEST(CheckpointFile, VerifyReadsAttributesOtherToolsAdded) {
  TempDir dir;
  const std::string path = dir.file("foreign.h5");
  {
    CheckpointWriter w(path);
    H5::Group model = require_group(w.file(), "/model");
    write_tensor(model, "w", at::ones({4}));
    model.close();
    w.commit();
  }
  const std::string cmd = "/usr/bin/python3 -c \"import h5py, numpy as np; f=h5py.File('" + path + "','r+'); "
                          "a=f['model/w'].attrs; a['names']=['alpha','beta','gamma']; "
                          "a['pair']=np.array((1, 2.5), dtype=[('i','<i4'),('x','<f8')]); a['nothing']=h5py.Empty('f4'); "
                          "s=np.empty(2, dtype=object); s[0]=np.arange(3); s[1]=np.arange(5); "
                          "a.create('seq', data=s, dtype=h5py.vlen_dtype('i8')); "
                          "f.attrs['note']='added by h5py'\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(verify_checkpoint(path), 1);
  EXPECT_EQ(get_attribute(open_checkpoint(path).openGroup("/"), "note"), "added by h5py");  // variable-length
}

TEST(CheckpointFile, LatestPointerRoundTrip) {
  TempDir dir;
  const std::string d = dir.path.string();
  EXPECT_EQ(read_latest(d), "");
  write_latest(d, "epoch=0-step=10.h5");
  EXPECT_EQ(read_latest(d), (dir.path / "epoch=0-step=10.h5").string());
  EXPECT_EQ(slurp(dir.file("latest")), "epoch=0-step=10.h5\n");
  write_latest(d, "epoch=1-step=20.h5");
  EXPECT_EQ(read_latest(d), (dir.path / "epoch=1-step=20.h5").string());
  EXPECT_FALSE(fs::exists(dir.file("latest.tmp")));
  // An empty pointer reads as no pointer.
  std::ofstream(dir.file("latest"), std::ios::trunc).flush();
  EXPECT_EQ(read_latest(d), "");
  EXPECT_EQ(read_latest(dir.file("no-such-dir")), "");
}

TEST(CheckpointFile, RemoveStaleTemporariesRemovesOnlyTmpFiles) {
  TempDir dir;
  for (const char* n : {"a.h5.tmp", "latest.tmp", "keep.h5", "latest", "tmp", "x.tmp.h5"}) std::ofstream(dir.file(n)) << "x";
  fs::create_directories(dir.path / "sub.tmp");
  EXPECT_EQ(remove_stale_temporaries(dir.path.string()), 2);
  for (const char* n : {"keep.h5", "latest", "tmp", "x.tmp.h5", "sub.tmp"}) EXPECT_TRUE(fs::exists(dir.path / n)) << n;
  EXPECT_FALSE(fs::exists(dir.path / "a.h5.tmp"));
  EXPECT_FALSE(fs::exists(dir.path / "latest.tmp"));
  EXPECT_EQ(remove_stale_temporaries(dir.file("no-such-dir")), 0);
}

TEST(CheckpointFile, ExportWeightsKeepsModelAndBuffersOnly) {
  TempDir dir;
  const std::string src = dir.file("full.h5"), dst = dir.file("weights.h5");
  at::Tensor w;
  write_sample_checkpoint(src, w);
  export_weights(src, dst);
  EXPECT_FALSE(fs::exists(dst + ".tmp"));

  H5::H5File f = open_checkpoint(dst);
  H5::Group root = f.openGroup("/");
  EXPECT_EQ(get_attribute(root, "kind"), "weights");
  EXPECT_EQ(get_attribute(root, "module"), "Mlp");
  EXPECT_EQ(get_attribute(root, "config"), R"({"hidden": 100})");
  EXPECT_EQ(get_attribute(root, "strategy"), "ddp");
  EXPECT_EQ(get_int_attribute(root, "format_version"), kFormatVersion);
  EXPECT_FALSE(f.nameExists("/optimizer"));
  EXPECT_FALSE(f.nameExists("/trainer"));
  H5::Group model = f.openGroup("/model"), buffers = f.openGroup("/buffers");
  EXPECT_EQ(model.getNumObjs(), 2u);
  EXPECT_EQ(buffers.getNumObjs(), 2u);
  EXPECT_TRUE(read_tensor(model, "fc.weight").equal(w));
  EXPECT_TRUE(read_tensor(model, "fc.bias").equal(at::full({100}, 0.5f)));
  EXPECT_TRUE(read_tensor(buffers, "bn.running_mean").equal(at::full({100}, -2.0f)));
  at::Tensor nbt = read_tensor(buffers, "bn.num_batches_tracked");
  EXPECT_EQ(nbt.scalar_type(), at::kLong);
  EXPECT_EQ(nbt.dim(), 0);
  EXPECT_EQ(nbt.item<int64_t>(), 42);
  EXPECT_EQ(verify_checkpoint(dst), 4);
  // The source is untouched.
  EXPECT_EQ(verify_checkpoint(src), 6);
}

TEST(CheckpointFile, ExportWeightsOfACheckpointWithoutBuffers) {
  TempDir dir;
  const std::string src = dir.file("full.h5"), dst = dir.file("weights.h5");
  write_checkpoint(src, at::arange(5, at::kFloat));
  export_weights(src, dst);
  H5::H5File f = open_checkpoint(dst);
  EXPECT_TRUE(read_tensor(f.openGroup("/model"), "w").equal(at::arange(5, at::kFloat)));
  ASSERT_TRUE(f.nameExists("/buffers"));
  EXPECT_EQ(f.openGroup("/buffers").getNumObjs(), 0u);
  EXPECT_EQ(get_attribute(f.openGroup("/"), "kind"), "weights");
  // A source that is not a checkpoint is refused and leaves no output.
  const std::string text = dir.file("text.h5"), out = dir.file("out.h5");
  std::ofstream(text) << "hello";
  EXPECT_TRUE(contains(error_of([&] { export_weights(text, out); }), "not an HDF5 file"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(CheckpointFile, IntegerAttributes) {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  {
    H5::H5File f = create_file(path);
    H5::Group root = f.openGroup("/");
    set_int_attribute(root, "epoch", 3);
    set_int_attribute(root, "epoch", 4);  // overwrites
    set_int_attribute(root, "big", int64_t(1) << 40);
    set_int_attribute(root, "negative", -17);
    set_attribute(root, "name", "text");
  }
  H5::H5File f = open_file(path);
  H5::Group root = f.openGroup("/");
  EXPECT_EQ(get_int_attribute(root, "epoch"), 4);
  EXPECT_EQ(get_int_attribute(root, "big"), int64_t(1) << 40);
  EXPECT_EQ(get_int_attribute(root, "negative"), -17);
  std::string m = error_of([&] { get_int_attribute(root, "missing"); });
  EXPECT_TRUE(contains(m, "attribute 'missing' missing")) << m;
  m = error_of([&] { get_int_attribute(root, "name"); });
  EXPECT_TRUE(contains(m, "'name'") && contains(m, "not an integer")) << m;
}

}  // namespace
}  // namespace hdf5_io
