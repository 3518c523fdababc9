// Identifiers people read aloud or type: incident codes.
#pragma once

#include <cstdint>
#include <string>

namespace tocsin {

// A 6-character incident code from `random` bits, in an alphabet without
// look-alikes (no 0/O, 1/I/L, U): easy to read out over the phone or text
// back. 30^6 ≈ 7×10^8 codes; the store refuses a taken one and the caller
// draws again.
std::string incident_code(uint64_t random);

// True when `s` has the shape of an incident code (case-insensitive input is
// the caller's to upper-case first).
bool looks_like_incident_code(const std::string& s);

}  // namespace tocsin
