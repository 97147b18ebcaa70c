// nanogpt tokenize encode | decode | bench: GPT-2 BPE from the command line.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/tokenizer/pretokenize.h"
#include "nanogpt/base/utf8.h"

namespace nanogpt::cli {

namespace {

struct TokenizeOptions {
  std::string input = "-";
  std::vector<std::string> inputs;
  std::string format = "text";
  std::string vocab_dir;
  bool allow_special = false;
  int threads = 0;
  int repeats = 3;
};

std::string read_input(const std::string& path) {
  if (path != "-") return read_file(path);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void write_output(const std::string& bytes) {
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout.flush();
}

int thread_count(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void add_common_options(CLI::App* cmd, TokenizeOptions& o) {
  cmd->add_option("--vocab-dir", o.vocab_dir,
                  "folder with GPT-2's encoder.json and vocab.bpe (default: $NANOGPT_GPT2_VOCAB_DIR, else "
                  "~/.cache/nanogpt-cpp/gpt2, downloaded when missing)");
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "GPT-2 BPE (tiktoken's gpt2 encoding): encode, decode, bench");
  cmd->require_subcommand(1);

  auto* encode = cmd->add_subcommand("encode", "Print the token ids of a UTF-8 file or stdin");
  encode->add_flag("--allow-special", o->allow_special, "read <|endoftext|> as token 50256 (as nanoGPT's sample.py)");
  encode->add_option("--format", o->format, "text (ids on one line) or uint16 (raw little-endian, like .bin)")
      ->capture_default_str();
  encode->add_option("--threads", o->threads, "encoding threads (0: all cores); the ids are the same")
      ->capture_default_str()
      ->check(number_in(0, true));
  encode->add_option("input", o->input, "file, or - for stdin")->capture_default_str();
  add_common_options(encode, *o);
  encode->callback([o] {
    const TokenIdFormat format = token_id_format(o->format);
    if (format == TokenIdFormat::kUint16 && ::isatty(STDOUT_FILENO)) {
      throw UsageError("--format uint16 writes binary ids: redirect stdout to a file");
    }
    const Gpt2Bpe bpe = Gpt2Bpe::load(find_gpt2_vocab_dir(o->vocab_dir));
    const std::string text = read_input(o->input);
    std::vector<uint32_t> ids;
    try {
      const int threads = thread_count(o->threads);
      ids = o->allow_special ? bpe.encode(text, threads) : bpe.encode_ordinary_parallel(text, threads);
    } catch (const TokenizerError& e) {
      throw TokenizerError(fmt::format("{}: {}", o->input == "-" ? "stdin" : o->input, e.what()));
    }
    write_output(format_token_ids(ids, format));
  });

  auto* decode = cmd->add_subcommand("decode", "Turn token ids back into the exact bytes");
  decode->add_option("--format", o->format, "text (decimal ids) or uint16 (raw little-endian)")->capture_default_str();
  decode->add_option("input", o->input, "file, or - for stdin")->capture_default_str();
  add_common_options(decode, *o);
  decode->callback([o] {
    const TokenIdFormat format = token_id_format(o->format);
    const Gpt2Bpe bpe = Gpt2Bpe::load(find_gpt2_vocab_dir(o->vocab_dir));
    const std::string name = o->input == "-" ? "stdin" : o->input;
    std::string bytes;
    try {
      bytes = bpe.decode(parse_token_ids(read_input(o->input), format, name));
    } catch (const TokenizerError& e) {
      const std::string why = e.what();
      throw TokenizerError(why.rfind(name, 0) == 0 ? why : fmt::format("{}: {}", name, why));
    }
    write_output(::isatty(STDOUT_FILENO) ? replace_invalid_utf8(bytes) : bytes);  // files get the exact bytes
  });

  auto* bench = cmd->add_subcommand("bench", "Encoding throughput on files (each file one encode call)");
  bench->add_option("--threads", o->threads, "1: encode_ordinary; more: encode_ordinary_parallel (0: all cores)")
      ->capture_default_str()
      ->check(number_in(0, true));
  bench->add_option("--repeat", o->repeats, "runs; the fastest counts")->capture_default_str()->check(number_in(1, true));
  bench->add_option("inputs", o->inputs, "UTF-8 text files")->required();
  add_common_options(bench, *o);
  bench->callback([o] {
    const Gpt2Bpe bpe = Gpt2Bpe::load(find_gpt2_vocab_dir(o->vocab_dir));
    std::vector<std::string> texts;
    for (const auto& path : o->inputs) {
      texts.push_back(read_file(path));
      if (const size_t bad = first_invalid_utf8(texts.back()); bad != std::string::npos) {
        throw TokenizerError(fmt::format("{}: invalid UTF-8 at byte offset {}", path, bad));
      }
    }
    const int threads = thread_count(o->threads);
    const EncodeBenchmark result = benchmark_encoding(bpe, texts, threads, o->repeats);
    fmt::print("{} files, {} bytes, {} tokens, {} thread{}, best of {}: {:.3f} s, {:.2f} MB/s\n", texts.size(),
               result.bytes, result.tokens, threads, threads == 1 ? "" : "s", std::max(1, o->repeats),
               result.best_seconds, result.megabytes_per_second());
  });
}

}  // namespace nanogpt::cli
