from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MeterSumGridState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[MeterSumGridState]
    OPEN: _ClassVar[MeterSumGridState]
    CLOSED: _ClassVar[MeterSumGridState]
    OFFGRID_AC_GRID_PRESENT: _ClassVar[MeterSumGridState]
    OFFGRID_READY_FOR_RESYNC_CMD: _ClassVar[MeterSumGridState]
    WAITING_TO_INITIALIZE_ON_GRID: _ClassVar[MeterSumGridState]
    GEN_OPEN: _ClassVar[MeterSumGridState]
    GEN_CLOSED: _ClassVar[MeterSumGridState]
    GEN_STARTUP: _ClassVar[MeterSumGridState]
    GEN_SYNC_READY: _ClassVar[MeterSumGridState]
    GEN_AC_STABLE: _ClassVar[MeterSumGridState]
    GEN_AC_UNSTABLE: _ClassVar[MeterSumGridState]

class BattMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FULL_BACKUP: _ClassVar[BattMode]
    SELF_CONS: _ClassVar[BattMode]
    SAVINGS: _ClassVar[BattMode]
    BATT_MODE_UNKNOWN: _ClassVar[BattMode]
UNKNOWN: MeterSumGridState
OPEN: MeterSumGridState
CLOSED: MeterSumGridState
OFFGRID_AC_GRID_PRESENT: MeterSumGridState
OFFGRID_READY_FOR_RESYNC_CMD: MeterSumGridState
WAITING_TO_INITIALIZE_ON_GRID: MeterSumGridState
GEN_OPEN: MeterSumGridState
GEN_CLOSED: MeterSumGridState
GEN_STARTUP: MeterSumGridState
GEN_SYNC_READY: MeterSumGridState
GEN_AC_STABLE: MeterSumGridState
GEN_AC_UNSTABLE: MeterSumGridState
FULL_BACKUP: BattMode
SELF_CONS: BattMode
SAVINGS: BattMode
BATT_MODE_UNKNOWN: BattMode

class MeterChannel(_message.Message):
    __slots__ = ("agg_p_mw", "agg_s_mva", "agg_p_ph_mw", "agg_s_ph_mva")
    AGG_P_MW_FIELD_NUMBER: _ClassVar[int]
    AGG_S_MVA_FIELD_NUMBER: _ClassVar[int]
    AGG_P_PH_MW_FIELD_NUMBER: _ClassVar[int]
    AGG_S_PH_MVA_FIELD_NUMBER: _ClassVar[int]
    agg_p_mw: int
    agg_s_mva: int
    agg_p_ph_mw: _containers.RepeatedScalarFieldContainer[int]
    agg_s_ph_mva: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, agg_p_mw: _Optional[int] = ..., agg_s_mva: _Optional[int] = ..., agg_p_ph_mw: _Optional[_Iterable[int]] = ..., agg_s_ph_mva: _Optional[_Iterable[int]] = ...) -> None: ...

class MeterSummaryData(_message.Message):
    __slots__ = ("pv", "storage", "grid", "load", "grid_relay", "soc", "generator", "gen_relay", "phase_count", "is_split_phase")
    PV_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    GRID_RELAY_FIELD_NUMBER: _ClassVar[int]
    SOC_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    GEN_RELAY_FIELD_NUMBER: _ClassVar[int]
    PHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    IS_SPLIT_PHASE_FIELD_NUMBER: _ClassVar[int]
    pv: MeterChannel
    storage: MeterChannel
    grid: MeterChannel
    load: MeterChannel
    grid_relay: MeterSumGridState
    soc: int
    generator: MeterChannel
    gen_relay: MeterSumGridState
    phase_count: int
    is_split_phase: bool
    def __init__(self, pv: _Optional[_Union[MeterChannel, _Mapping]] = ..., storage: _Optional[_Union[MeterChannel, _Mapping]] = ..., grid: _Optional[_Union[MeterChannel, _Mapping]] = ..., load: _Optional[_Union[MeterChannel, _Mapping]] = ..., grid_relay: _Optional[_Union[MeterSumGridState, str]] = ..., soc: _Optional[int] = ..., generator: _Optional[_Union[MeterChannel, _Mapping]] = ..., gen_relay: _Optional[_Union[MeterSumGridState, str]] = ..., phase_count: _Optional[int] = ..., is_split_phase: _Optional[bool] = ...) -> None: ...

class PowerMatchStatus(_message.Message):
    __slots__ = ("status", "total_pcu_count", "running_pcu_count", "is_supported")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PCU_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_PCU_COUNT_FIELD_NUMBER: _ClassVar[int]
    IS_SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    status: bool
    total_pcu_count: int
    running_pcu_count: int
    is_supported: bool
    def __init__(self, status: _Optional[bool] = ..., total_pcu_count: _Optional[int] = ..., running_pcu_count: _Optional[int] = ..., is_supported: _Optional[bool] = ...) -> None: ...

class DataMsg(_message.Message):
    __slots__ = ("protocol_ver", "timestamp", "meters", "batt_mode", "backup_soc", "power_match_status")
    PROTOCOL_VER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METERS_FIELD_NUMBER: _ClassVar[int]
    BATT_MODE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_SOC_FIELD_NUMBER: _ClassVar[int]
    POWER_MATCH_STATUS_FIELD_NUMBER: _ClassVar[int]
    protocol_ver: int
    timestamp: int
    meters: MeterSummaryData
    batt_mode: BattMode
    backup_soc: int
    power_match_status: PowerMatchStatus
    def __init__(self, protocol_ver: _Optional[int] = ..., timestamp: _Optional[int] = ..., meters: _Optional[_Union[MeterSummaryData, _Mapping]] = ..., batt_mode: _Optional[_Union[BattMode, str]] = ..., backup_soc: _Optional[int] = ..., power_match_status: _Optional[_Union[PowerMatchStatus, _Mapping]] = ...) -> None: ...
