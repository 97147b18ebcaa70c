#pragma once
// The CRC-32 a zip file records for each of its entries, and the checksum itself, so that a
// torch.save file is checked as it is read: LibTorch's reader skips the check (its miniz is
// built without it), and a flipped byte in a weight would otherwise load as a plausible number.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace nanogpt::zip_crc {

// CRC-32 (the zip and zlib polynomial) of n bytes, continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

// Entry name -> recorded CRC-32, from the central directory (zip64 too). Names are as
// stored, with the archive's top folder ("ckpt/data.pkl"). Throws std::runtime_error naming
// `path` when there is no readable central directory.
std::map<std::string, uint32_t> recorded_crcs(const std::string& path);

}  // namespace nanogpt::zip_crc
