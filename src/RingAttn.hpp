#ifndef RINGATTN_HPP
#define RINGATTN_HPP

// RingAttn: exact (dense and LongNet-dilated) attention over a ring of
// members, with a streaming log-sum-exp softmax. One include for users.
#include <RingAttn_Config.hpp>
#include <api/RingAttn_RingAttention.hpp>
#include <model/RingAttn_RingModel.hpp>
#include <ring/RingAttn_MemoryModel.hpp>
#include <ring/RingAttn_RingPlan.hpp>

#endif
