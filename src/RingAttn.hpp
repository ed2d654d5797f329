#include "RingAttn_Config.hpp"
