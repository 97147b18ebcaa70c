// nanoGPT's GPT-2 data preparation: data/shakespeare/prepare.py (one text split on
// characters) and data/openwebtext/prepare.py (documents, each followed by <|endoftext|>).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "nanogpt/tokenizer/encode_pipeline.h"
#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/data/prepare.h"
#include "nanogpt/tokenizer/pretokenize.h"
#include "nanogpt/base/utf8.h"

namespace nanogpt {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBatchBytes = 1 << 20;  // text per batch of documents handed to a worker

// A uint16 little-endian token file written as it grows into `path`.tmp, renamed over
// `path` by commit(); removed if never committed.
class TokenFileWriter {
 public:
  explicit TokenFileWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {
    out_.open(tmp_path_, std::ios::binary | std::ios::trunc);
    if (!out_) throw IoError(fmt::format("cannot create '{}': {}", tmp_path_, std::strerror(errno)));
  }
  ~TokenFileWriter() {
    if (committed_) return;
    out_.close();
    std::error_code ec;
    fs::remove(tmp_path_, ec);
  }
  void write(const std::vector<uint32_t>& ids) {
    bytes_.resize(ids.size() * 2);
    for (size_t i = 0; i < ids.size(); ++i) {
      bytes_[2 * i] = static_cast<char>(ids[i] & 0xFF);
      bytes_[2 * i + 1] = static_cast<char>(ids[i] >> 8);
    }
    out_.write(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
    tokens_ += static_cast<int64_t>(ids.size());
  }
  void commit() {
    out_.close();
    if (!out_) throw IoError(fmt::format("cannot write '{}' (disk full?)", path_));
    commit_file(tmp_path_, path_);
    committed_ = true;
  }
  int64_t tokens() const { return tokens_; }

 private:
  std::string path_, tmp_path_;
  std::ofstream out_;
  std::string bytes_;
  int64_t tokens_ = 0;
  bool committed_ = false;
};

// "[=====>    ] 3/7 documents, 12.3 MB/s, ETA 0:04" on stderr, redrawn at most 10 times a second.
class ProgressBar {
 public:
  ProgressBar(bool enabled, int64_t total_documents, int64_t total_bytes)
      : enabled_(enabled), total_documents_(total_documents), total_bytes_(total_bytes) {}
  void update(int64_t documents, int64_t bytes, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double bytes_per_s = seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
    const int64_t eta_s = bytes_per_s > 0 ? std::llround(static_cast<double>(total_bytes_ - bytes) / bytes_per_s) : 0;
    constexpr int kWidth = 30;
    const int filled = total_bytes_ > 0 ? static_cast<int>(kWidth * bytes / total_bytes_) : kWidth;
    const std::string bar = std::string(filled, '=') + (filled < kWidth ? ">" : "") +
                            std::string(std::max(0, kWidth - filled - 1), ' ');
    fmt::print(stderr, "\r[{}] {}/{} documents, {:.1f} MB/s, ETA {}:{:02d} ", bar, documents, total_documents_,
               bytes_per_s / 1e6, eta_s / 60, eta_s % 60);
    std::fflush(stderr);
  }
  void finish(int64_t documents, int64_t bytes) {
    if (!enabled_) return;
    update(documents, bytes, true);
    fmt::print(stderr, "\n");
  }

 private:
  bool enabled_;
  int64_t total_documents_, total_bytes_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_draw_;
};

// Knuth's selection sampling: exactly `val_count` of `total` documents, every such subset
// equally likely, decided one document at a time in input order.
class ValSelector {
 public:
  ValSelector(int64_t total, int64_t val_count, uint64_t seed) : rng_(seed), left_(total), val_left_(val_count) {}
  bool next() {
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    const bool pick = static_cast<double>(left_) * u < static_cast<double>(val_left_);
    --left_;
    if (pick) --val_left_;
    return pick;
  }

 private:
  std::mt19937_64 rng_;
  int64_t left_, val_left_;
};

// Calls `emit(document, offset in the file)` for each non-empty document of `path`: the whole
// file, or each part between separators, read in chunks so a large file never sits in memory.
void for_each_document(const std::string& path, const std::string& separator,
                       const std::function<void(std::string&&, size_t)>& emit) {
  if (separator.empty()) {
    std::string text = read_file(path);
    if (!text.empty()) emit(std::move(text), 0);
    return;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  std::string pending;  // the text after the last separator found
  size_t pending_offset = 0;
  std::vector<char> chunk(16 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const size_t search_from = pending.size() >= separator.size() ? pending.size() - separator.size() + 1 : 0;
    pending.append(chunk.data(), static_cast<size_t>(in.gcount()));
    size_t start = 0;
    for (size_t found = pending.find(separator, search_from); found != std::string::npos;
         found = pending.find(separator, start)) {
      if (found > start) emit(pending.substr(start, found - start), pending_offset + start);
      start = found + separator.size();
    }
    pending.erase(0, start);
    pending_offset += start;
  }
  if (in.bad()) throw IoError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  if (!pending.empty()) emit(std::move(pending), pending_offset);
}

void check_utf8(std::string_view text, const std::string& path, size_t offset) {
  const size_t bad = first_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw TokenizerError(fmt::format("{}: invalid UTF-8 at byte offset {}; expected UTF-8 text", path, offset + bad));
  }
}

PreparedGpt2Dataset prepare_single_text(const Gpt2Bpe& bpe, const std::string& path, const fs::path& out_dir,
                                        double val_fraction, int threads) {
  std::string raw = read_file(path);
  check_utf8(raw, path, 0);
  const std::string text = universal_newlines(std::move(raw));
  // data[:int(n*0.9)] on the Python str: n counts code points, not bytes
  size_t chars = 0;
  for (char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  const auto train_chars = static_cast<size_t>(static_cast<double>(chars) * (1.0 - val_fraction));
  size_t split = 0;
  for (size_t seen = 0; split < text.size(); ++split) {
    if ((static_cast<unsigned char>(text[split]) & 0xC0) != 0x80 && seen++ == train_chars) break;
  }
  TokenFileWriter train((out_dir / "train.bin").string()), val((out_dir / "val.bin").string());
  train.write(bpe.encode_ordinary_parallel(std::string_view(text).substr(0, split), threads));
  val.write(bpe.encode_ordinary_parallel(std::string_view(text).substr(split), threads));
  train.commit();
  val.commit();
  return {train.tokens(), val.tokens(), 1, 0};
}

PreparedGpt2Dataset prepare_documents(const Gpt2Bpe& bpe, const Gpt2PrepareOptions& options, const fs::path& out_dir,
                                      double val_fraction, int threads) {
  int64_t total_documents = 0, total_bytes = 0;
  for (const auto& path : options.inputs) {
    for_each_document(path, options.doc_separator, [&](std::string&& document, size_t) {
      ++total_documents;
      total_bytes += static_cast<int64_t>(document.size());
    });
  }
  // Hugging Face's train_test_split (nanoGPT's openwebtext split) takes ceil(test_size * n)
  const auto val_documents = static_cast<int64_t>(std::ceil(val_fraction * static_cast<double>(total_documents)));
  if (val_documents < 1 || val_documents >= total_documents) {
    throw std::invalid_argument(fmt::format(
        "--val-fraction {} gives {} of {} documents to val.bin; each split needs at least one document", val_fraction,
        val_documents, total_documents));
  }
  ValSelector is_val(total_documents, val_documents, options.seed);
  TokenFileWriter train((out_dir / "train.bin").string()), val((out_dir / "val.bin").string());
  ProgressBar progress(options.progress, total_documents, total_bytes);
  int64_t written_documents = 0, written_bytes = 0, read_documents = 0;
  detail::EncodePipeline pipeline(bpe, threads, [&](detail::DocumentBatch& batch) {
    train.write(batch.train_ids);
    val.write(batch.val_ids);
    written_documents += static_cast<int64_t>(batch.documents.size());
    written_bytes += static_cast<int64_t>(batch.text_bytes);
    progress.update(written_documents, written_bytes);
  });
  auto batch = std::make_unique<detail::DocumentBatch>();
  for (const auto& path : options.inputs) {
    for_each_document(path, options.doc_separator, [&](std::string&& document, size_t offset) {
      if (++read_documents > total_documents) throw IoError(fmt::format("'{}' changed while it was read", path));
      check_utf8(document, path, offset);
      batch->text_bytes += document.size();
      batch->is_val.push_back(is_val.next());
      batch->documents.push_back(universal_newlines(std::move(document)));
      if (batch->text_bytes >= kBatchBytes) {
        pipeline.submit(std::move(batch));
        batch = std::make_unique<detail::DocumentBatch>();
      }
    });
  }
  if (!batch->documents.empty()) pipeline.submit(std::move(batch));
  pipeline.finish();
  progress.finish(written_documents, written_bytes);
  if (read_documents != total_documents) throw IoError("the input files changed while they were read");
  train.commit();
  val.commit();
  return {train.tokens(), val.tokens(), total_documents, val_documents};
}

}  // namespace

PreparedGpt2Dataset prepare_gpt2_dataset(const Gpt2PrepareOptions& options) {
  if (options.inputs.empty()) throw std::invalid_argument("prepare gpt2 needs at least one --input file");
  for (const auto& path : options.inputs) {
    if (!fs::is_regular_file(path)) throw std::invalid_argument(fmt::format("--input '{}' does not exist or is not a file", path));
  }
  if (std::all_of(options.inputs.begin(), options.inputs.end(), [](const auto& path) { return fs::file_size(path) == 0; })) {
    throw std::invalid_argument(fmt::format("--input '{}'{} empty: there is no text to tokenize", options.inputs[0],
                                            options.inputs.size() > 1 ? " and the others are" : " is"));
  }
  const bool single_text = options.inputs.size() == 1 && options.doc_separator.empty();
  const double val_fraction = options.val_fraction >= 0 ? options.val_fraction : single_text ? 0.1 : 0.0005;
  if (!(val_fraction > 0 && val_fraction < 1)) {
    throw std::invalid_argument(fmt::format("--val-fraction must be in (0, 1), got {}", val_fraction));
  }
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const Gpt2Bpe bpe = Gpt2Bpe::load(find_gpt2_vocab_dir(options.vocab_dir));
  const fs::path out_dir(options.out_dir);
  create_folder(out_dir.string(), "--out-dir");
  const PreparedGpt2Dataset result = single_text
                                         ? prepare_single_text(bpe, options.inputs[0], out_dir, val_fraction, threads)
                                         : prepare_documents(bpe, options, out_dir, val_fraction, threads);
  DatasetMeta meta;
  meta.vocab_size = static_cast<int64_t>(bpe.vocab_size());
  meta.tokenizer = "gpt2";
  write_meta_json((out_dir / "meta.json").string(), meta);
  std::error_code ec;
  fs::remove(out_dir / "meta.pkl", ec);  // a char vocabulary left there would mislead Python nanoGPT
  return result;
}

}  // namespace nanogpt
